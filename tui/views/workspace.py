"""The main region of the screen: the two modes as tabs and the parameter panel beside them.

It owns what its views and its panel post (tui.messages): sessions are kept as they change,
refusals are shown, presets are stored, cursors hold still while a reply streams. The app hands
it what it needs (the open sessions, the generation service, the key hints, the panel) and asks
it which mode and view are shown."""

from __future__ import annotations

from typing import Any, Dict, Optional

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import TabbedContent, TabPane

from .. import messages
from ..bindings import KeyHints
from ..cursors import SteadyCursors
from ..service import GenerationService
from ..session import Session
from ..sessions import OpenSessions
from ..widgets import ParamsPanel
from .chat import ChatView
from .generating import GeneratingView
from .playground import PlaygroundView

PANEL_MIN_WIDTH = 110  # columns: narrower, the parameter panel starts hidden (ctrl+t shows it)


class Workspace(Horizontal):
    def __init__(self, sessions: OpenSessions, service: GenerationService, hints: KeyHints,
                 panel: ParamsPanel, **kwargs):
        super().__init__(**kwargs)
        self.sessions = sessions
        self.service = service
        self.hints = hints
        self.panel = panel
        self._tabs: Optional[TabbedContent] = None  # the modes, once mounted
        self._views: Dict[str, GeneratingView] = {}
        self._panel_wanted = True  # the parameter panel, where there is room (ctrl+t hides it)
        self._cursors = SteadyCursors(self)

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="chat-tab", id="modes"):
            with TabPane("Chat", id="chat-tab"):
                yield ChatView(self.sessions["chat"], self.service, self.hints, id="chat")
            with TabPane("Playground", id="playground-tab"):
                yield PlaygroundView(self.sessions["playground"], self.service, self.hints, id="playground")
        yield self.panel

    def on_mount(self) -> None:
        self._tabs = self.query_one(TabbedContent)
        self._views = {"chat": self.query_one(ChatView), "playground": self.query_one(PlaygroundView)}
        self.panel.set_presets(self.sessions.store.presets())

    # ---- the modes ---------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """"chat" or "playground": the tab shown. (Asked for every binding each time the keys'
        state is looked up, so no DOM query here.)"""
        if self._tabs is None:
            return "chat"
        return "chat" if self._tabs.active == "chat-tab" else "playground"

    @property
    def view(self) -> GeneratingView:
        return self._views[self.mode]

    @property
    def chat(self) -> ChatView:
        return self._views["chat"]

    @property
    def current(self) -> Session:
        return self.sessions[self.mode]

    def show_mode(self, mode: str) -> None:
        # Focus follows into the shown pane (focus left in the hidden one would switch back).
        self._tabs.active = f"{mode}-tab"
        self.query_one("#chat-input" if mode == "chat" else "#playground-buffer").focus()

    def put_session(self, session: Session) -> None:
        """Make `session` its mode's session and show it there."""
        self.sessions.put(session)
        self._views[session.kind].show_session(session)

    @on(TabbedContent.TabActivated)
    def _mode_changed(self) -> None:
        self.panel.set_values(self.current.params)

    # ---- the parameter panel -------------------------------------------------------------------------

    @on(ParamsPanel.Changed)
    def _params_changed(self, event: ParamsPanel.Changed) -> None:
        if event.panel.valid:
            self.current.params = event.panel.changed()

    def fit_panel(self, width: int) -> None:
        """The parameter panel shows where it leaves the conversation room (110 columns), unless
        it was hidden (ctrl+t)."""
        self.panel.display = self._panel_wanted and width >= PANEL_MIN_WIDTH

    def toggle_panel(self) -> None:
        self.panel.display = not self.panel.display
        self._panel_wanted = self.panel.display

    @on(messages.PresetSaved)
    def _preset_saved(self, event: messages.PresetSaved) -> None:
        self.save_preset(event.name, event.params)

    @on(messages.PresetDeleted)
    def _preset_deleted(self, event: messages.PresetDeleted) -> None:
        self.delete_preset(event.name)

    def save_preset(self, name: str, params: Dict[str, Any]) -> None:
        self.sessions.store.save_preset(name, params)
        self.panel.set_presets(self.sessions.store.presets())
        self.notify(f"preset {name!r} saved")

    def delete_preset(self, name: str) -> None:
        self.sessions.store.delete_preset(name)
        self.panel.set_presets(self.sessions.store.presets())
        self.notify(f"preset {name!r} deleted")

    # ---- what the views tell ---------------------------------------------------------------------------

    @on(messages.SessionChanged)
    def _session_changed(self, event: messages.SessionChanged) -> None:
        """Keep the session, with the panel's parameters if the panel shows its mode."""
        session = event.session
        params = self.panel.changed() if session is self.current else None
        self.sessions.save(session, self.service.model, params)

    @on(messages.GenerationStarted)
    def _generation_started(self) -> None:
        self._cursors.hold()

    @on(messages.GenerationFinished)
    def _generation_finished(self) -> None:
        self._cursors.release()

    @on(messages.RequestRejected)
    def _request_rejected(self, event: messages.RequestRejected) -> None:
        self.notify(event.reason, title="request rejected", severity="error")

    @on(messages.ParamsInvalid)
    def _params_invalid(self, event: messages.ParamsInvalid) -> None:
        self.notify(event.reason, title="parameters", severity="error")

    @on(messages.ChatUnavailable)
    def _chat_unavailable(self) -> None:
        self.notify(self.service.no_chat_message(), title="no chat with this model", severity="warning")
