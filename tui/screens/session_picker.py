"""The session picker: saved sessions to reopen, search, rename or delete."""

from __future__ import annotations

import time
from typing import Optional, Tuple

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..messages import SessionDeleted, SessionRenamed
from .text_prompt import TextPrompt


class SessionPicker(ModalScreen[Optional[int]]):
    """Saved conversations and playground sessions, most recent first; type to search their
    titles and text. In the list: Enter opens, r (or F2) renames, Delete (or d) deletes after a
    second press. A rename or a deletion is posted (SessionRenamed, SessionDeleted): an open
    session follows it."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "close", id="close_dialog"),
        Binding("r,f2", "rename", "rename", id="session_rename"),
        Binding("delete,d", "delete", "delete", id="session_delete"),
    ]

    def __init__(self, store):
        super().__init__()
        self.store = store
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
                self.post_message(SessionRenamed(session_id, new_title))
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
        self.post_message(SessionDeleted(session_id))
        self.refresh_sessions()
        status.update(f"deleted {title!r}")
