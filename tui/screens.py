"""Modal screens: the model picker (with pulling), the session picker, the token inspector
(alternatives and "branch here"), and a path prompt."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

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
    """Saved conversations and playground sessions, most recent first."""

    BINDINGS = [Binding("escape", "dismiss(None)", "close", id="close_dialog")]

    def __init__(self, sessions: Sequence[Tuple[int, str, str, str, float]]):
        super().__init__()
        self.sessions = list(sessions)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Sessions  [dim](Enter: open · Esc: close)[/]")
            options = [
                Option(f"{kind:<10} {title}  [dim]{model} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(updated))}[/]",
                       id=str(session_id))
                for session_id, kind, title, model, updated in self.sessions
            ]
            yield OptionList(*options, id="session-list")

    @on(OptionList.OptionSelected, "#session-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))


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

    def __init__(self, title: str, placeholder: str = ""):
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            yield Input(placeholder=self.placeholder, id="path-input")

    @on(Input.Submitted, "#path-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
