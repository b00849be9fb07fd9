"""Modal screens: the model picker (with pulling), the session picker, the token inspector
(alternatives and "branch here"), and a path prompt."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from edgecomplete import models

from .tokens import TokenView, alternatives


class ModelPicker(ModalScreen[Optional[str]]):
    """Registered models, installed or pullable. Choosing a pullable one pulls it (in a worker
    thread, with a progress bar); choosing an installed one returns its name."""

    BINDINGS = [Binding("escape", "dismiss(None)", "close", id="close_dialog")]

    def __init__(self, current: str):
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Models  [dim](Enter: use or pull · Esc: close)[/]")
            yield OptionList(id="model-list")
            yield Static("", id="pull-status")
            yield ProgressBar(id="pull-progress", show_eta=False)

    def on_mount(self) -> None:
        self.query_one("#pull-progress").display = False
        self.refresh_models()

    def refresh_models(self) -> None:
        options = []
        for status in models.list_models():
            m = status.manifest
            state = "installed" if status.installed else "pullable"
            current = "  ← current" if m.name == self.current else ""
            options.append(Option(f"{m.name:<16} {state:<9} {m.size / 1e6:5.0f} MB  {m.description}{current}", id=m.name))
        option_list = self.query_one("#model-list", OptionList)
        option_list.clear_options()
        option_list.add_options(options)
        names = [option.id for option in options]
        option_list.highlighted = names.index(self.current) if self.current in names else 0
        option_list.focus()

    @on(OptionList.OptionSelected, "#model-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        name = event.option.id
        status = next(s for s in models.list_models() if s.manifest.name == name)
        if status.installed:
            self.dismiss(name)
        else:
            self.pull(name)

    @work(thread=True, exclusive=True, group="pull")
    def pull(self, name: str) -> None:
        bar = self.query_one("#pull-progress", ProgressBar)
        status = self.query_one("#pull-status", Static)
        self.app.call_from_thread(setattr, bar, "display", True)
        last = [0.0]

        def progress(p: models.PullProgress) -> None:
            now = time.monotonic()
            if now - last[0] < 0.1 and p.done < p.total:
                return
            last[0] = now
            label = f"pulling {p.model}: {p.stage}" + (f" {p.part}/{p.parts}" if p.stage == "download" else "")
            self.app.call_from_thread(status.update, label)
            self.app.call_from_thread(bar.update, total=max(p.total, 1), progress=p.done)

        try:
            models.pull(name, progress=progress)
            self.app.call_from_thread(status.update, f"{name} is installed")
        except models.ModelError as error:
            self.app.call_from_thread(status.update, f"[red]{error}[/]")
        self.app.call_from_thread(self.refresh_models)


class SessionPicker(ModalScreen[Optional[int]]):
    """Saved conversations and playground sessions, most recent first; type to search their
    titles and text. In the list: Enter opens, r (or F2) renames, Delete (or d) deletes after a
    second press. `changed(session_id, title)` tells the app of a rename (the title) or a
    deletion (None)."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "close", id="close_dialog"),
        Binding("r,f2", "rename", "rename", id="session_rename"),
        Binding("delete,d", "delete", "delete", id="session_delete"),
    ]

    def __init__(self, store, changed: Callable[[int, Optional[str]], None]):
        super().__init__()
        self.store = store
        self.changed = changed
        self._armed: Optional[int] = None  # the session a first Delete asked about

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Sessions  [dim](type to search · Enter: open · r: rename · Delete: delete · Esc)[/]")
            yield Input(placeholder="search titles and messages", id="session-search")
            yield OptionList(id="session-list")
            yield Static("", id="session-status")

    def on_mount(self) -> None:
        self.refresh_sessions()
        self.query_one("#session-list").focus()

    def refresh_sessions(self) -> None:
        text = self.query_one("#session-search", Input).value.strip()
        rows = self.store.search(text) if text else self.store.sessions()
        option_list = self.query_one("#session-list", OptionList)
        option_list.clear_options()
        option_list.add_options([
            Option(f"{kind:<10} {title}  [dim]{model} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(updated))}[/]",
                   id=str(session_id))
            for session_id, kind, title, model, updated in rows])
        if rows:
            option_list.highlighted = 0
        self.query_one("#session-status", Static).update("" if rows or not text else f"nothing matches {text!r}")

    def _highlighted(self) -> Optional[Tuple[int, str]]:
        option_list = self.query_one("#session-list", OptionList)
        if option_list.highlighted is None or option_list.option_count == 0:
            return None
        session_id = int(option_list.get_option_at_index(option_list.highlighted).id)
        title = next((row[2] for row in self.store.sessions() if row[0] == session_id), "")
        return session_id, title

    @on(Input.Changed, "#session-search")
    def _search(self) -> None:
        self.refresh_sessions()

    @on(Input.Submitted, "#session-search")
    def _open_first(self) -> None:
        option_list = self.query_one("#session-list", OptionList)
        if option_list.option_count:
            self.dismiss(int(option_list.get_option_at_index(0).id))

    @on(OptionList.OptionSelected, "#session-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))

    def action_rename(self) -> None:
        chosen = self._highlighted()
        if chosen is None:
            return
        session_id, title = chosen

        def renamed(new_title: Optional[str]) -> None:
            if new_title:
                self.store.rename(session_id, new_title)
                self.changed(session_id, new_title)
                self.refresh_sessions()

        self.app.push_screen(TextPrompt(f"Rename {title!r}", title, value=title), renamed)

    def action_delete(self) -> None:
        chosen = self._highlighted()
        if chosen is None:
            return
        session_id, title = chosen
        status = self.query_one("#session-status", Static)
        if self._armed != session_id:
            self._armed = session_id
            status.update(f"press Delete again to delete {title!r}")
            return
        self._armed = None
        self.store.delete(session_id)
        self.changed(session_id, None)
        self.refresh_sessions()
        status.update(f"deleted {title!r}")


@dataclass
class BranchChoice:
    token_index: int  # regenerate from this token ...
    text: str  # ... with this text in its place


class TokenInspector(ModalScreen[Optional[BranchChoice]]):
    """A completion's tokens coloured by probability; the alternatives of the token under the
    cursor; Enter on an alternative regenerates from that token with it ("branch here")."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "close", id="close_dialog"),
        Binding("tab,shift+tab", "toggle_focus", "tokens / alternatives", show=False, id="inspector_toggle"),
        Binding("b", "alternatives", "branch here", id="branch_here"),
    ]

    def __init__(self, tokens: Sequence[str], log_probs: Sequence[Mapping[str, float]]):
        super().__init__()
        self.tokens = list(tokens)
        self.log_probs = list(log_probs)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog inspector"):
            yield Label("Tokens by probability  [dim](←/→ move · b or Tab: alternatives · Enter: branch here · Esc)[/]")
            yield TokenView(self.tokens, self.log_probs, id="inspector-tokens")
            yield Label("", id="inspector-token")
            yield OptionList(id="alternatives")

    def on_mount(self) -> None:
        self.query_one(TokenView).focus()

    @on(TokenView.Moved)
    def _moved(self, event: TokenView.Moved) -> None:
        index = event.index
        if not self.tokens:
            return
        token = self.tokens[index]
        entry = event.view.entry(index)
        self.query_one("#inspector-token", Label).update(
            f"token {index + 1}/{len(self.tokens)}: {token!r}" + ("" if entry else "  (no log-probs: set log_probs)"))
        option_list = self.query_one("#alternatives", OptionList)
        option_list.clear_options()
        option_list.add_options(
            [Option(f"{100 * p:6.2f}%  {alt!r}" + ("  ← chosen" if alt == token else ""), id=f"{i}")
             for i, (alt, p) in enumerate(alternatives(token, entry))]
        )
        self._alternatives: List[str] = [alt for alt, _ in alternatives(token, entry)]

    def action_toggle_focus(self) -> None:
        tokens = self.query_one(TokenView)
        (self.query_one("#alternatives", OptionList) if tokens.has_focus else tokens).focus()

    def action_alternatives(self) -> None:
        """Choose the alternative to branch with."""
        alternatives_list = self.query_one("#alternatives", OptionList)
        alternatives_list.focus()
        if alternatives_list.option_count:
            alternatives_list.highlighted = 0

    @on(OptionList.OptionSelected, "#alternatives")
    def _branch(self, event: OptionList.OptionSelected) -> None:
        index = self.query_one(TokenView).cursor
        self.dismiss(BranchChoice(index, self._alternatives[int(event.option.id)]))


class TextPrompt(ModalScreen[Optional[str]]):
    BINDINGS = [Binding("escape", "dismiss(None)", "close", id="close_dialog")]

    def __init__(self, title: str, placeholder: str = "", value: str = ""):
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            yield Input(self.value, placeholder=self.placeholder, id="path-input")

    @on(Input.Submitted, "#path-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
