"""The edgecomplete terminal UI: chat and playground over the public completion API.

The app talks to models only through edgecomplete's AsyncClient (CompletionRequest in, stream
items out) and `edgecomplete.models` (list, pull); generation runs on the engine's thread and the
UI awaits it, so the UI thread never waits on the model.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, TabbedContent, TabPane

from edgecomplete import DEFAULT_MODEL, AsyncClient, Client, CompletionRequest, Prompt, models

from .chat import ChatView
from .config import Config, data_dir
from .params import ParamsPanel
from .playground import PlaygroundView
from .screens import BranchChoice, ModelPicker, TextPrompt, SessionPicker, TokenInspector
from .session import Session
from .store import Store
from .widgets import StatsBar

# The UI's starting values where the API's default does not suit a conversation: replies of
# bounded length (an unlimited maximum_tokens also reserves the whole context for every reply).
UI_DEFAULTS: Dict[str, Any] = {"maximum_tokens": 512}


class EdgeCompleteApp(App):
    TITLE = "edgecomplete"
    CSS_PATH = "app.tcss"

    # Every binding has an id, so the keys can be remapped from the config file ([keymap]).
    # No binding is a priority one: a priority binding acts as its key arrives, before keys
    # typed ahead of it have reached the focused input (the playground buffer binds f5-f7 itself,
    # over TextArea's own f6 and f7).
    BINDINGS = [
        Binding("escape", "cancel", "stop", id="cancel"),
        Binding("ctrl+r", "regenerate", "regenerate", id="regenerate"),
        Binding("f4", "edit", "edit last", id="edit"),
        Binding("f5", "generate", "generate", id="generate"),
        Binding("f6", "accept", "accept", id="accept"),
        Binding("f7", "reject", "reject", id="reject"),
        Binding("ctrl+l", "inspect", "tokens", id="inspect"),
        Binding("ctrl+up", "choose(-1)", "previous candidate", show=False, id="choose_previous"),
        Binding("ctrl+down", "choose(1)", "next candidate", show=False, id="choose_next"),
        Binding("ctrl+t", "toggle_params", "parameters", id="toggle_params"),
        Binding("f2", "models", "models", id="models"),
        Binding("ctrl+o", "open_session", "open", id="open_session"),
        Binding("ctrl+n", "new_session", "new", id="new_session"),
        Binding("ctrl+s", "export", "export", id="export"),
        Binding("f8", "copy", "copy", id="copy"),
        Binding("f3", "switch_mode", "chat/playground", id="switch_mode"),
    ]

    def __init__(self, model: Optional[str] = None, client: Optional[Client] = None,
                 data: Optional[Path] = None, config: Optional[Config] = None):
        super().__init__()
        self.config = config if config is not None else Config.load()
        self.model = model or self.config.defaults.get("model", DEFAULT_MODEL)
        self.client = AsyncClient(client=client) if client is not None else AsyncClient()
        self.data = data or data_dir()
        self.store = Store(self.data / "tui.sqlite3")
        defaults = {**UI_DEFAULTS, **{k: v for k, v in self.config.defaults.items() if k != "model"}}
        self.chat_session = self.store.latest("chat") or Session("chat", self.model, params=dict(defaults))
        self.playground_session = self.store.latest("playground") or Session("playground", self.model,
                                                                             params=dict(defaults))
        self._tabs: Optional[TabbedContent] = None  # the modes, once mounted
        self.last_export: Optional[Path] = None
        self.stats_bar = StatsBar(id="stats")
        self.stats = self.stats_bar.stats

    # ---- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with TabbedContent(initial="chat-tab", id="modes"):
                with TabPane("Chat", id="chat-tab"):
                    yield ChatView(self.chat_session, id="chat")
                with TabPane("Playground", id="playground-tab"):
                    yield PlaygroundView(self.playground_session, id="playground")
            yield ParamsPanel(self.chat_session.params, id="params")
        yield self.stats_bar
        yield Footer()

    def on_mount(self) -> None:
        self._tabs = self.query_one(TabbedContent)
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        self.query_one(ParamsPanel).set_presets(self.store.presets())
        self.query_one("#params").display = self.size.width >= 110
        self.stats_bar.model = self.model
        self.sub_title = self.model
        self.query_one("#chat-input").focus()
        self.load_model(self.model)

    @work(exclusive=True, group="model")
    async def load_model(self, model: str) -> None:
        """Load the model off the UI thread; an uninstalled one opens the model picker."""
        self.stats_bar.model = f"{model} (loading)"
        try:
            info = await self.client.model_info(model)
        except models.ModelNotPulledError as error:
            self.notify(str(error), title="model not installed", severity="warning")
            self.action_models()
            return
        self.model = model
        self.sub_title = model
        self.stats.context_length = info["context_length"]
        self.stats_bar.model = model

    # ---- the current mode -------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """"chat" or "playground": the tab shown on the main screen. (Asked for every binding each
        time the keys' state is looked up, so no DOM query here.)"""
        if self._tabs is None:
            return "chat"
        return "chat" if self._tabs.active == "chat-tab" else "playground"

    @property
    def view(self):
        return self.screen_stack[0].query_one(ChatView if self.mode == "chat" else PlaygroundView)

    @property
    def current(self) -> Session:
        return self.chat_session if self.mode == "chat" else self.playground_session

    @on(TabbedContent.TabActivated)
    def _mode_changed(self) -> None:
        self.query_one(ParamsPanel).set_values(self.current.params)
        self.refresh_bindings()

    _MODE_ACTIONS = {"generate": "playground", "accept": "playground", "reject": "playground",
                     "edit": "chat", "choose": "chat"}

    def check_action(self, action: str, parameters) -> Optional[bool]:
        """Keys of the other mode are hidden from the footer and do nothing."""
        wanted = self._MODE_ACTIONS.get(action)
        return wanted is None or wanted == self.mode

    @on(ParamsPanel.Changed)
    def _params_changed(self, event: ParamsPanel.Changed) -> None:
        if event.panel.valid:
            self.current.params = event.panel.changed()

    # ---- requests ------------------------------------------------------------------------------------

    def build_request(self, chat: bool) -> Optional[CompletionRequest]:
        """The panel's parameters as a request (the prompt is filled in by the view). Chat prompts
        are sent as rendered (their final newline matters); tokens always come back, for the
        numbers and the token view; several candidates bring log-probs, for their scores."""
        panel = self.query_one(ParamsPanel)
        panel.sync()
        if not panel.valid:
            self.notify(panel.first_error() or "invalid parameters", title="parameters", severity="error")
            return None
        values = panel.values()
        values["tokens"] = True
        if chat:
            values["disable_optimizations"] = True
        if (values.get("n", 1) > 1 or (values.get("best_of") or 1) > 1) and values.get("log_probs") is None:
            values["log_probs"] = 0
        return CompletionRequest(prompt=Prompt.from_text(""), **values)

    @contextmanager
    def steady_cursors(self) -> Iterator[None]:
        """While a reply streams, text cursors stop blinking: every blink redraws the screen, UI
        time taken from the model's decode on a machine whose cores all run llama.cpp. Only the
        focused widget's cursor blinks, so only its watcher runs: Input's watcher starts the
        blink timer on `cursor_blink = True` even without focus, and twenty parameter fields
        would then redraw the screen forty times a second while the app sits idle."""
        blinking = [widget for widget in self.query("Input, TextArea") if widget.cursor_blink]
        self._set_blink(blinking, False)
        try:
            yield
        finally:
            self._set_blink(blinking, True)

    def _set_blink(self, widgets: Iterable, blink: bool) -> None:
        for widget in widgets:
            if widget is self.focused:
                widget.cursor_blink = blink
            else:  # its timer is paused while it has no focus; focusing it starts one if it blinks
                widget.set_reactive(type(widget).cursor_blink, blink)

    def save_session(self, session: Session) -> None:
        session.model = self.model
        if session is self.current:
            session.params = self.query_one(ParamsPanel).changed()
        self.store.save(session)

    def save_preset(self, name: str, params: Dict[str, Any]) -> None:
        self.store.save_preset(name, params)
        self.query_one(ParamsPanel).set_presets(self.store.presets())
        self.notify(f"preset {name!r} saved")

    # ---- actions -----------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        self.view.cancel()

    def action_regenerate(self) -> None:
        if self.mode == "chat":
            self.view.regenerate()
        else:
            self.view.generate()

    def _in_mode(self, action: str) -> bool:
        """The palette calls actions directly: the same mode rule as for keys (check_action)."""
        return self.check_action(action, ())

    def action_edit(self) -> None:
        if self._in_mode("edit"):
            self.view.edit_last_user_message()

    def action_generate(self) -> None:
        if self._in_mode("generate"):
            self.view.generate()

    def action_accept(self) -> None:
        if self._in_mode("accept"):
            self.view.accept()

    def action_reject(self) -> None:
        if self._in_mode("reject"):
            self.view.reject()

    def action_choose(self, step: int) -> None:
        if self._in_mode("choose"):
            self.view.choose(step)

    def action_toggle_params(self) -> None:
        panel = self.query_one("#params")
        panel.display = not panel.display

    def action_switch_mode(self) -> None:
        self.show_mode("playground" if self.mode == "chat" else "chat")

    def show_mode(self, mode: str) -> None:
        # Focus follows into the shown pane (focus left in the hidden one would switch back).
        self.query_one(TabbedContent).active = f"{mode}-tab"
        self.query_one("#chat-input" if mode == "chat" else "#playground-buffer").focus()

    def action_inspect(self) -> None:
        """The token view of the last reply (chat) or the pending completion (playground)."""
        turn = self.view.last_reply() if self.mode == "chat" else self.view.pending
        if turn is None or not turn.tokens():
            self.notify("nothing to inspect yet", severity="warning")
            return
        if not turn.log_probs():
            self.notify("set log_probs (e.g. 5) to see probabilities and alternatives", severity="information")

        def branch(choice: Optional[BranchChoice]) -> None:
            if choice is not None:
                self.view.branch(choice)

        self.push_screen(TokenInspector(turn.tokens(), turn.log_probs() or []), branch)

    def action_models(self) -> None:
        def chosen(name: Optional[str]) -> None:
            if name and name != self.model:
                self.load_model(name)

        self.push_screen(ModelPicker(self.model), chosen)

    def action_open_session(self) -> None:
        def chosen(session_id: Optional[int]) -> None:
            if session_id is not None:
                self.open_session(self.store.load(session_id))

        self.push_screen(SessionPicker(self.store.sessions()), chosen)

    def open_session(self, session: Session) -> None:
        if session.kind == "chat":
            self.chat_session = session
            self.query_one(ChatView).show_session(session)
        else:
            self.playground_session = session
            self.query_one(PlaygroundView).show_session(session)
        self.show_mode(session.kind)
        self.query_one(ParamsPanel).set_values(session.params)
        if session.model != self.model:
            self.load_model(session.model)

    async def action_new_session(self) -> None:
        """A new conversation or playground; one being generated is stopped first (as with Esc)."""
        await self.view.stop()
        session = Session(self.mode, self.model, params=self.query_one(ParamsPanel).changed())
        self.open_session(session)

    def action_export(self) -> None:
        """Write the current session as Markdown and as JSON (the exact requests and responses)."""
        session = self.current
        if session.kind == "playground":
            session.buffer = self.view.buffer
        folder = self.data / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{session.kind}-{session.id or 'new'}-{time.strftime('%Y%m%d-%H%M%S')}"
        stem.with_suffix(".md").write_text(session.to_markdown(), encoding="utf-8")
        stem.with_suffix(".json").write_text(json.dumps(session.to_json(), ensure_ascii=False, indent=2),
                                             encoding="utf-8")
        self.last_export = stem
        self.notify(f"exported to {stem}.md and .json", title="export")

    def action_import(self) -> None:
        def chosen(path: Optional[str]) -> None:
            if path:
                self.import_session(Path(path).expanduser())

        self.push_screen(TextPrompt("Import a session exported as JSON", "path/to/file.json"), chosen)

    def import_session(self, path: Path) -> Session:
        session = Session.from_json(json.loads(path.read_text(encoding="utf-8")))
        self.store.save(session)
        self.open_session(session)
        self.notify(f"imported {session.display_title()!r}", title="import")
        return session

    def action_copy(self) -> None:
        """Copy the last reply (chat) or pending completion (playground) through the terminal
        (OSC 52, where the terminal allows it)."""
        turn = self.view.last_reply() if self.mode == "chat" else self.view.pending
        if turn is None:
            return
        self.copy_to_clipboard(turn.content)
        self.notify("copied to the clipboard")

    def action_set_system_prompt(self) -> None:
        self.show_mode("chat")
        self.query_one("#system-prompt").focus()

    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = [
            ("Regenerate", "Generate the last reply / completion again", self.action_regenerate),
            ("Edit last message", "Put the last message back in the input", self.action_edit),
            ("Inspect tokens", "Probabilities and alternatives; branch from a token", self.action_inspect),
            ("Models", "Pick or pull a model", self.action_models),
            ("Open session", "Reopen a saved conversation or playground", self.action_open_session),
            ("New session", "Start a new conversation or playground", self.action_new_session),
            ("Export session", "Markdown and JSON with the exact requests and responses", self.action_export),
            ("Import session", "Open a session exported as JSON", self.action_import),
            ("Copy", "Copy the last reply to the clipboard", self.action_copy),
            ("System prompt", "Set the conversation's system prompt", self.action_set_system_prompt),
            ("Toggle parameters", "Show or hide the parameter panel", self.action_toggle_params),
            ("Switch mode", "Chat or playground", self.action_switch_mode),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)

    def on_unmount(self) -> None:
        for session in (self.chat_session, self.playground_session):
            if session.turns or session.buffer:
                self.store.save(session)
        self.store.close()


def main(model: Optional[str] = None) -> None:
    EdgeCompleteApp(model=model).run()
