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
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from edgecomplete import DEFAULT_MODEL, AsyncClient, Client, CompletionRequest, Prompt, models, with_drawn_seed

from . import screens
from .chat import ChatInput, ChatView
from .config import Config, data_dir
from .params import ParamsPanel
from .playground import PlaygroundBuffer, PlaygroundView
from .screens import BranchChoice, ModelPicker, TextPrompt, SessionPicker, TokenInspector
from .session import Session
from .tokens import TokenView
from .store import STORE_FILE, Store
from .widgets import MessageView, StatsBar

# The UI's starting values where the API's default does not suit a conversation: replies of
# bounded length (an unlimited maximum_tokens also reserves the whole context for every reply).
UI_DEFAULTS: Dict[str, Any] = {"maximum_tokens": 512}
PANEL_MIN_WIDTH = 110  # columns: narrower, the parameter panel starts hidden (ctrl+t shows it)
# A chat samples (ctrl+r gives another reply; several candidates differ); the API's default stays
# greedy, and the panel marks this as changed from it.
CHAT_DEFAULTS: Dict[str, Any] = {**UI_DEFAULTS, "temperature": 0.7}


class EdgeCompleteApp(App):
    TITLE = "edgecomplete"
    CSS_PATH = "app.tcss"

    # Every binding has an id, so the keys can be remapped from the config file ([keymap]).
    # No binding is a priority one: a priority binding acts as its key arrives, before keys
    # typed ahead of it have reached the focused input (the playground buffer binds f5-f7 itself,
    # over TextArea's own f6 and f7).
    BINDINGS = [
        Binding("escape", "cancel", "stop", show=False, id="cancel"),
        Binding("ctrl+r", "regenerate", "regenerate", show=False, id="regenerate"),
        Binding("f4", "edit", "edit last", show=False, id="edit"),
        Binding("f5", "generate", "generate", show=False, id="generate"),
        Binding("f6", "accept", "accept", show=False, id="accept"),
        Binding("f7", "reject", "reject", show=False, id="reject"),
        Binding("ctrl+l", "inspect", "tokens", show=False, id="inspect"),
        Binding("ctrl+up", "choose(-1)", "previous candidate", show=False, id="choose_previous"),
        Binding("ctrl+down", "choose(1)", "next candidate", show=False, id="choose_next"),
        Binding("ctrl+t", "toggle_params", "params", id="toggle_params"),
        Binding("f2", "models", "models", id="models"),
        Binding("ctrl+o", "open_session", "open", id="open_session"),
        Binding("ctrl+n", "new_session", "new", id="new_session"),
        Binding("ctrl+s", "export", "export", id="export"),
        Binding("f8", "copy", "copy", id="copy"),
        Binding("f3", "switch_mode", "chat/play", id="switch_mode"),
        Binding("ctrl+g", "continue", "continue", show=False, id="continue"),
        Binding("ctrl+b", "toggle_markdown", "markdown/raw", show=False, id="toggle_markdown"),
    ]

    def __init__(self, model: Optional[str] = None, client: Optional[Client] = None,
                 data: Optional[Path] = None, config: Optional[Config] = None):
        super().__init__()
        self.config = config if config is not None else Config.load()
        self.config.check_keymap(binding_ids())
        self.binding_keys = {**default_keys(), **self.config.keymap}  # binding id -> its keys
        self.model = model or self.config.defaults.get("model", DEFAULT_MODEL)
        self.client = AsyncClient(client=client) if client is not None else AsyncClient()
        self.data = data or data_dir()
        self.store = Store(self.data / STORE_FILE)
        configured = {k: v for k, v in self.config.defaults.items() if k != "model"}
        self.chat_session = self.store.latest("chat") or Session(
            "chat", self.model, params={**CHAT_DEFAULTS, **configured})
        self.playground_session = self.store.latest("playground") or Session(
            "playground", self.model, params={**UI_DEFAULTS, **configured})
        self._tabs: Optional[TabbedContent] = None  # the modes, once mounted
        self.last_export: Optional[Path] = None
        self.markdown = True  # replies shown as Markdown (ctrl+b: raw text)
        self._params_wanted = True  # the parameter panel, where there is room (ctrl+t hides it)
        self.can_chat = True  # the model has a chat template (known once it is loaded)
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
        for problem in self.config.problems:
            self.notify(problem, title="configuration", severity="error", timeout=20)
        self.query_one(ParamsPanel).set_presets(self.store.presets())
        self.query_one("#params").display = self.size.width >= PANEL_MIN_WIDTH
        self._show_context(self.chat_session)
        self.stats_bar.model = self.model
        self.sub_title = self.model
        self.query_one("#chat-input").focus()
        self.load_model(self.model)

    @work(exclusive=True, group="model")
    async def load_model(self, model: str) -> None:
        """Load the model off the UI thread; an uninstalled one opens the model picker."""
        self.stats_bar.model = f"{model} (loading)"
        if self.stats_bar.is_mounted:
            self.stats_bar.show()
        try:
            info = await self.client.model_info(model)
        except models.ModelNotPulledError as error:
            self.notify(str(error), title="model not installed", severity="warning")
            self.action_models()
            return
        self.model = model
        self.sub_title = model
        self.query_one(ParamsPanel).set_limits(info["max_sequences"])
        self.can_chat = info["chat"]
        self.stats_bar.model = model
        self.stats.context_length = info["context_length"]
        self.stats_bar.show()  # at once, not at its next tick
        if not self.can_chat:
            self.notify(self.no_chat_message(), title="no chat with this model", severity="warning", timeout=15)

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
                     "edit": "chat", "continue": "chat"}

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
        # A sampled request gets its seed here: recorded with it, every reply replays exactly.
        return with_drawn_seed(CompletionRequest(prompt=Prompt.from_text(""), **values))

    def no_chat_message(self) -> str:
        return (f"{self.model} has no chat template: a base model, which completes text but was not "
                f"tuned for chat. Use the Playground (F3), or pick a chat model (F2).")

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
        panel = self.query(ParamsPanel)  # none while the app shuts down (a reply stopped by it)
        if session is self.current and panel:
            session.params = panel.first().changed()
        self.store.save(session)

    def delete_preset(self, name: str) -> None:
        self.store.delete_preset(name)
        self.query_one(ParamsPanel).set_presets(self.store.presets())
        self.notify(f"preset {name!r} deleted")

    def save_preset(self, name: str, params: Dict[str, Any]) -> None:
        self.store.save_preset(name, params)
        self.query_one(ParamsPanel).set_presets(self.store.presets())
        self.notify(f"preset {name!r} saved")

    # ---- actions -----------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        """Stop the generation; with none, leave editing a message (F4) as it was."""
        if not self.view.cancel() and self.mode == "chat":
            self.view.cancel_edit()

    def action_continue(self) -> None:
        if self._in_mode("continue"):
            self.view.continue_reply()

    def action_toggle_markdown(self) -> None:
        """Replies as Markdown (code blocks, lists, emphasis) or as their raw text (coloured by
        probability where log-probs came back)."""
        self.markdown = not self.markdown
        for view in self.query(MessageView):
            view.show()
        self.notify("replies as Markdown" if self.markdown else "replies as raw text")

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
        self._params_wanted = panel.display

    def on_resize(self, event: events.Resize) -> None:
        """The parameter panel shows where it leaves the conversation room (110 columns), unless
        it was hidden (ctrl+t)."""
        if self._tabs is not None:
            self.screen_stack[0].query_one("#params").display = (
                self._params_wanted and event.size.width >= PANEL_MIN_WIDTH)

    def key_hint(self, *actions: Tuple[str, str]) -> str:
        """"Enter: send · ctrl+j: newline ..." for (binding id, what it does) pairs, with the
        keys as the keymap has them."""
        return " · ".join(f"{_key_label(self.binding_keys.get(binding_id, '?'))}: {label}" for binding_id, label in actions)

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

        self.push_screen(SessionPicker(self.store, self._session_changed), chosen)

    def _session_changed(self, session_id: int, title: Optional[str]) -> None:
        """A session renamed (title) or deleted (None) in the session list: the open one follows
        (deleted, a new one takes its place)."""
        for session in (self.chat_session, self.playground_session):
            if session.id != session_id:
                continue
            if title is not None:
                session.title = title
                continue
            self._put_session(Session(session.kind, self.model, params=dict(session.params)))

    def _put_session(self, session: Session) -> None:
        """Make `session` its mode's session and show it there."""
        if session.kind == "chat":
            self.chat_session = session
        else:
            self.playground_session = session
        self.screen_stack[0].query_one(ChatView if session.kind == "chat" else PlaygroundView).show_session(session)

    def open_session(self, session: Session) -> None:
        self._put_session(session)
        self.show_mode(session.kind)
        self.query_one(ParamsPanel).set_values(session.params)
        self._show_context(session)
        if session.model != self.model:
            self.load_model(session.model)

    def _show_context(self, session: Session) -> None:
        """The stats bar's context gauge: what the session's last reply had in use."""
        if self.stats.running:
            return
        last = next((t for t in reversed(session.turns) if t.response), None)
        response = last.response if last is not None else {}
        self.stats.prompt_tokens = response.get("num_tokens_prompt_total", 0) // max(len(last.completions()) if last else 1, 1)
        self.stats.generated = response.get("num_tokens_generated", 0)
        self.stats.first_chunk = self.stats.finished = None
        if self.stats_bar.is_mounted:
            self.stats_bar.show()

    async def action_new_session(self) -> None:
        """A new conversation or playground; one being generated is stopped first (as with Esc)."""
        await self.view.stop()
        panel = self.query_one(ParamsPanel)
        panel.sync()  # the controls as they are (a value typed just before may not have been read)
        session = Session(self.mode, self.model, params=panel.changed())
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

    def import_session(self, path: Path) -> Optional[Session]:
        """Open a session exported as JSON; a file that is missing or not such an export is named
        in a message, and nothing changes."""
        try:
            session = Session.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self.notify(f"{path}: {reason}", title="import failed", severity="error")
            return None
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
            ("Stop", "Stop the reply or completion being generated", self.action_cancel),
            ("Regenerate", "Generate the last reply / completion again", self.action_regenerate),
            ("Continue reply", "Go on with the last reply where it was cut or stopped", self.action_continue),
            ("Generate (playground)", "Complete the playground's text", self.action_generate),
            ("Accept completion", "Append the pending completion to the playground's text", self.action_accept),
            ("Reject completion", "Drop the pending completion", self.action_reject),
            ("Next candidate", "Make the next candidate the reply / completion", lambda: self.action_choose(1)),
            ("Previous candidate", "Make the previous candidate the reply / completion",
             lambda: self.action_choose(-1)),
            ("Markdown / raw text", "Show replies as Markdown or as their raw text", self.action_toggle_markdown),
            ("Edit last message", "Put the last message back in the input", self.action_edit),
            ("Inspect tokens", "Probabilities and alternatives; branch from a token", self.action_inspect),
            ("Models", "Pick or pull a model", self.action_models),
            ("Open session", "Reopen, search, rename or delete saved sessions", self.action_open_session),
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


def default_keys() -> Dict[str, str]:
    """Every key binding of the app, its views and its dialogs, by id (the ids [keymap] may
    name): its keys as declared."""
    classes = [EdgeCompleteApp, ChatInput, PlaygroundBuffer, TokenView, *(
        value for value in vars(screens).values() if isinstance(value, type) and issubclass(value, Screen))]
    return {binding.id: binding.key for cls in classes for binding in cls.BINDINGS
            if isinstance(binding, Binding) and binding.id}


def binding_ids() -> Iterable[str]:
    return default_keys().keys()


def _key_label(keys: str) -> str:
    """The first of a binding's keys as people write it: Enter, Esc, F4, ctrl+j."""
    key = keys.split(",")[0].strip()
    return {"enter": "Enter", "escape": "Esc", "tab": "Tab"}.get(key, key.upper() if len(key) <= 3 and key.startswith("f") else key)


def main(model: Optional[str] = None) -> None:
    EdgeCompleteApp(model=model).run()
