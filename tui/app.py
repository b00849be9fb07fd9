"""The edgecomplete terminal UI: chat and playground over the public completion API.

The app talks to models only through a GenerationService over edgecomplete's AsyncClient
(CompletionRequest in, stream items out) and `edgecomplete.models` (list, pull); generation runs
on the engine's thread and the UI awaits it, so the UI thread never waits on the model. The app
builds the parts and hands them down (the workspace, its views and panel get the service, the
open sessions, the key hints); what happens in them is posted up as messages (tui.messages). The
app itself does what keys and the command palette ask for, and loads models.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.widgets import Footer, Header, TabbedContent

from edgecomplete import DEFAULT_MODEL, AsyncClient, Client, models

from . import exports, messages
from .bindings import APP_BINDINGS, COMMANDS, MODE_ACTIONS, KeyHints, binding_ids, default_keys
from .config import Config, data_dir
from .screens import BranchChoice, ModelPicker, SessionPicker, SteeringPicker, TextPrompt, TokenInspector
from .service import GenerationService
from .session import Session
from .sessions import OpenSessions
from .stats import GenerationStats
from .store import STORE_FILE, Store
from .views import GeneratingView, Workspace
from .widgets import ParamsPanel, StatsBar

# The UI's starting values where the API's default does not suit a conversation: replies of
# bounded length (an unlimited maximum_tokens also reserves the whole context for every reply).
UI_DEFAULTS: Dict[str, Any] = {"maximum_tokens": 512}
# A chat samples (ctrl+r gives another reply; several candidates differ); the API's default stays
# greedy, and the panel marks this as changed from it.
CHAT_DEFAULTS: Dict[str, Any] = {**UI_DEFAULTS, "temperature": 0.7}


class EdgeCompleteApp(App):
    TITLE = "edgecomplete"
    CSS_PATH = "app.tcss"
    BINDINGS = APP_BINDINGS  # each with an id: [keymap] in the config file remaps them

    def __init__(self, model: Optional[str] = None, client: Optional[Client] = None,
                 data: Optional[Path] = None, config: Optional[Config] = None, mmproj: Optional[str] = None,
                 remote: Optional[Dict[str, Any]] = None):
        """mmproj: the vision projector of the starting model (its chat messages may hold images).
        remote: Client options for a remote engine (host, backend, token)."""
        super().__init__()
        self.config = config if config is not None else Config.load()
        self.config.check_keymap(binding_ids())
        model = model or self.config.defaults.get("model", DEFAULT_MODEL)
        self.data = data or data_dir()
        self.store = Store(self.data / STORE_FILE)
        configured = {k: v for k, v in self.config.defaults.items() if k != "model"}
        self.sessions = OpenSessions(self.store, model, {"chat": {**CHAT_DEFAULTS, **configured},
                                                         "playground": {**UI_DEFAULTS, **configured}})
        self.last_export: Optional[Path] = None
        self.markdown = True  # replies shown as Markdown (ctrl+b: raw text)
        self.stats = GenerationStats()
        self.stats_bar = StatsBar(self.stats, id="stats")
        panel = ParamsPanel(self.chat_session.params, id="params")
        client = AsyncClient(client=client) if client is not None else AsyncClient(
            mmproj={model: mmproj} if mmproj else None, **(remote or {}))
        self.service = GenerationService(client, model, panel, self.stats)
        self.workspace = Workspace(self.sessions, self.service, KeyHints({**default_keys(), **self.config.keymap}),
                                   panel, id="main")

    # ---- what the parts say -----------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self.service.model

    @property
    def can_chat(self) -> bool:
        """The current model has a chat template (known once it is loaded)."""
        return self.service.can_chat

    @property
    def chat_session(self) -> Session:
        return self.sessions["chat"]

    @property
    def playground_session(self) -> Session:
        return self.sessions["playground"]

    @property
    def mode(self) -> str:
        """"chat" or "playground": the tab shown on the main screen."""
        return self.workspace.mode

    @property
    def view(self) -> GeneratingView:
        return self.workspace.view

    # ---- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.workspace
        yield self.stats_bar
        yield Footer()

    def on_mount(self) -> None:
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        for problem in self.config.problems:
            self.notify(problem, title="configuration", severity="error", timeout=20)
        self.workspace.fit_panel(self.size.width)
        self._show_context(self.chat_session)
        self.stats_bar.model = self.model
        self.sub_title = self.model
        self.query_one("#chat-input").focus()
        self.load_model(self.model)

    def on_resize(self, event: events.Resize) -> None:
        if self.workspace.is_mounted:
            self.workspace.fit_panel(event.size.width)

    @on(TabbedContent.TabActivated)
    def _mode_changed(self) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters) -> Optional[bool]:
        """Keys of the other mode are hidden from the footer and do nothing."""
        wanted = MODE_ACTIONS.get(parameters[0]) if action == "view" and parameters else None
        return wanted is None or wanted == self.mode

    # ---- the model --------------------------------------------------------------------------------

    def load_model(self, model: str) -> None:
        """Load the model off the UI thread; an uninstalled one opens the model picker."""
        self.stats_bar.model = f"{model} (loading)"
        if self.stats_bar.is_mounted:
            self.stats_bar.show()
        self._load(model)

    @work(exclusive=True, group="model")
    async def _load(self, model: str) -> None:
        try:
            info = await self.service.load(model)
        except models.ModelNotPulledError as error:
            self.post_message(messages.ModelMissing(str(error)))
            return
        except models.ModelError as error:  # a corrupt file, a projector made for another model, ...
            self.stats_bar.model = f"{model} (not loaded)"
            self.notify(str(error), title=f"{model} cannot be loaded", severity="error", timeout=30)
            return
        self.post_message(messages.ModelLoaded(model, dict(info)))

    @on(messages.ModelLoaded)
    def _model_loaded(self, event: messages.ModelLoaded) -> None:
        self.service.use(event.model, event.info)
        self.sub_title = event.model
        self.workspace.panel.set_limits(event.info["max_sequences"])
        self.stats_bar.model = event.model
        self.stats_bar.show()  # at once, not at its next tick
        if not self.can_chat:
            self.notify(self.service.no_chat_message(), title="no chat with this model", severity="warning",
                        timeout=15)

    @on(messages.ModelMissing)
    def _model_missing(self, event: messages.ModelMissing) -> None:
        self.notify(event.reason, title="model not installed", severity="warning")
        self.action_models()

    def action_models(self) -> None:
        def chosen(name: Optional[str]) -> None:
            if name and name != self.model:
                self.load_model(name)

        self.push_screen(ModelPicker(self.model), chosen)

    def action_steering(self) -> None:
        """Steering concepts for this conversation: on or off, their strengths, new ones from
        pairs; the parameter panel then shows them (steering_concepts, steering_strengths)."""
        panel = self.workspace.panel
        values = panel.values()

        def chosen(result: Optional[Dict[str, Any]]) -> None:
            if result is not None:
                panel.update_values(result)

        self.push_screen(SteeringPicker(self.service.steering_concepts, self.service.create_steering_concept,
                                        values.get("steering_concepts"), values.get("steering_strengths")), chosen)

    # ---- the mode's view (check_action's mode rule holds for keys and the palette alike) ------------

    def action_view(self, method: str, *args: Any) -> None:
        """What the keys of a mode ask its view for: generate, accept, regenerate, choose(1), ..."""
        getattr(self.view, method)(*args)

    def action_cancel(self) -> None:
        """Stop the generation; with none, leave editing a message (F4) as it was."""
        if not self.view.cancel():
            self.view.cancel_edit()

    def action_toggle_markdown(self) -> None:
        """Replies as Markdown (code blocks, lists, emphasis) or as their raw text (coloured by
        probability where log-probs came back)."""
        self.markdown = not self.markdown
        self.workspace.chat.show_markdown(self.markdown)
        self.notify("replies as Markdown" if self.markdown else "replies as raw text")

    def action_toggle_params(self) -> None:
        self.workspace.toggle_panel()

    def action_switch_mode(self) -> None:
        self.show_mode("playground" if self.mode == "chat" else "chat")

    def show_mode(self, mode: str) -> None:
        self.workspace.show_mode(mode)

    def action_inspect(self) -> None:
        """The token view of the last reply (chat) or the pending completion (playground)."""
        turn = self.view.shown_turn()
        if turn is None or not turn.tokens():
            self.notify("nothing to inspect yet", severity="warning")
            return
        if not turn.log_probs():
            self.notify("set log_probs (e.g. 5) to see probabilities and alternatives", severity="information")

        def branch(choice: Optional[BranchChoice]) -> None:
            if choice is not None:
                self.view.branch(choice)

        self.push_screen(TokenInspector(turn.tokens(), turn.log_probs() or []), branch)

    def action_copy(self) -> None:
        """Copy the last reply (chat) or pending completion (playground) through the terminal
        (OSC 52, where the terminal allows it)."""
        turn = self.view.shown_turn()
        if turn is None:
            return
        self.copy_to_clipboard(turn.content)
        self.notify("copied to the clipboard")

    def action_set_system_prompt(self) -> None:
        self.show_mode("chat")
        self.query_one("#system-prompt").focus()

    # ---- sessions -------------------------------------------------------------------------------------

    def action_open_session(self) -> None:
        def chosen(session_id: Optional[int]) -> None:
            if session_id is not None:
                self.open_session(self.store.load(session_id))

        self.push_screen(SessionPicker(self.store), chosen)

    @on(messages.SessionRenamed)
    @on(messages.SessionDeleted)
    def _session_listed(self, event) -> None:
        """A session renamed or deleted in the session list: an open one follows (deleted, a new
        one takes its place)."""
        title = event.title if isinstance(event, messages.SessionRenamed) else None
        for session in self.sessions.follow(event.session_id, title, self.model):
            self.workspace.put_session(session)

    def open_session(self, session: Session) -> None:
        self.workspace.put_session(session)
        self.show_mode(session.kind)
        self.workspace.panel.set_values(session.params)
        self._show_context(session)
        if session.model != self.model:
            self.load_model(session.model)

    def _show_context(self, session: Session) -> None:
        """The stats bar's context gauge: what the session's last reply had in use."""
        if self.stats.show_session(session) and self.stats_bar.is_mounted:
            self.stats_bar.show()

    async def action_new_session(self) -> None:
        """A new conversation or playground; one being generated is stopped first (as with Esc)."""
        await self.view.stop()
        panel = self.workspace.panel
        panel.sync()  # the controls as they are (a value typed just before may not have been read)
        self.open_session(Session(self.mode, self.model, params=panel.changed()))

    def action_export(self) -> None:
        """Write the current session as Markdown and as JSON (the exact requests and responses)."""
        session = self.workspace.current
        if session.kind == "playground":
            session.buffer = self.view.buffer
        self.last_export = stem = exports.export_session(session, self.data / "exports")
        self.notify(f"exported to {stem}.md and .json", title="export")

    def action_import(self) -> None:
        def chosen(path: Optional[str]) -> None:
            if path:
                self.import_session(Path(path).expanduser())

        self.push_screen(TextPrompt("Import a session exported as JSON", "path/to/file.json"), chosen)

    def import_session(self, path: Path) -> Optional[Session]:
        """Open a session exported as JSON; a file that is missing or not such an export is named
        in a message, and nothing changes."""
        try:
            session = self.sessions.import_file(path)
        except exports.ImportFailed as error:
            self.notify(str(error), title="import failed", severity="error")
            return None
        self.open_session(session)
        self.notify(f"imported {session.display_title()!r}", title="import")
        return session

    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in COMMANDS:
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    def on_unmount(self) -> None:
        self.sessions.close()


def main(model: Optional[str] = None, mmproj: Optional[str] = None, remote: Optional[Dict[str, Any]] = None) -> None:
    EdgeCompleteApp(model=model, mmproj=mmproj, remote=remote).run()
