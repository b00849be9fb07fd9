"""Chat mode: a conversation in the model's own chat format, streamed replies, regenerate,
edit-and-resend, cancel, candidates side by side, branching from a token."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static, TextArea

from edgecomplete import CompletionRequest, Prompt

from .generation import Generation, GenerationOwner
from .screens import BranchChoice
from .session import Session, Turn, with_prefix
from .widgets import CandidatesView, LiveReply, MessageView, follow


class ChatInput(TextArea):
    """Enter sends; ctrl+j (or shift+enter where the terminal reports it) inserts a newline.

    Keys are applied in the order they arrive, also in a burst (a paste ending in a newline, a
    fast typist, `tmux send-keys`): the send key is an ordinary binding, acted on when the key
    reaches it after every key typed before it, never a priority binding (which the app runs
    as the key arrives, ahead of the characters still queued for this input)."""

    BINDINGS = [
        Binding("enter", "submit", "send", show=False, id="send"),
        Binding("ctrl+j,shift+enter", "newline", "newline", show=False, id="newline"),
    ]

    @dataclass
    class Submitted(Message):
        text: str

    def _on_key(self, event: events.Key) -> None:
        # Textual runs TextArea's own key handler after this one, and it inserts Enter; a key
        # bound here (send, as the keymap has it) skips it and bubbles on to its binding.
        active = self.screen.active_bindings.get(event.key)
        if active is not None and active.node is self:
            event.prevent_default()

    def action_submit(self) -> None:
        self.post_message(self.Submitted(self.text))

    def action_newline(self) -> None:
        self.insert("\n")


@dataclass
class Continuation:
    """Where a reply starts: after `text` (a branch or a continued reply, with the `tokens` and
    `log_probs` it had), in place of `replaces`, answering `sent` (a message sent with it)."""

    text: str = ""
    tokens: Optional[List[str]] = None
    log_probs: Optional[List[Mapping[str, float]]] = None
    replaces: Optional[Turn] = None
    sent: Optional[Turn] = None

    @staticmethod
    def branch(reply: Turn, choice: BranchChoice) -> "Continuation":
        tokens, log_probs = reply.kept_until(choice.token_index, choice.text)
        return Continuation(text="".join(tokens), tokens=tokens, log_probs=log_probs, replaces=reply)

    def whole(self, response: Dict[str, Any]) -> Dict[str, Any]:
        """The response as the whole reply: what the reply started from in front of it."""
        return with_prefix(response, self.text, self.tokens, self.log_probs) if self.text else response


class ChatView(GenerationOwner, Vertical):
    """The conversation of a chat Session."""

    def __init__(self, session: Session, **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.generation: Optional[Generation] = None
        self._live: Optional[LiveReply] = None  # the reply being streamed
        self._candidates: Optional[CandidatesView] = None
        self.editing: Optional[int] = None  # the index of the user message being edited (F4)

    def compose(self) -> ComposeResult:
        yield Input(self.session.system_prompt, placeholder="system prompt (optional)", id="system-prompt")
        yield VerticalScroll(id="chat-log")
        yield Static("", id="chat-hint", classes="hint")
        yield ChatInput(id="chat-input")

    def on_mount(self) -> None:
        self.query_one("#chat-hint", Static).update(self.app.key_hint(
            ("send", "send"), ("newline", "newline"), ("cancel", "stop"), ("regenerate", "regenerate"),
            ("edit", "edit"), ("continue", "continue"), ("inspect", "tokens")))
        self.show_session(self.session)

    # ---- showing --------------------------------------------------------------------------------

    @on(Input.Changed, "#system-prompt")
    def _system_prompt_changed(self, event: Input.Changed) -> None:
        self.session.system_prompt = event.value

    def show_session(self, session: Session) -> None:
        if session is not self.session:
            self.editing = None
        self.session = session
        self.query_one("#system-prompt", Input).value = session.system_prompt
        log = self.query_one("#chat-log", VerticalScroll)
        log.remove_children()
        for index, turn in enumerate(session.turns):
            log.mount(MessageView(turn, index))
        self._candidates = None
        last = session.turns[-1] if session.turns else None
        if last is not None and len(last.completions()) > 1:
            self._show_candidates(last)
        self._show_editing()
        log.scroll_end(animate=False)

    def _show_candidates(self, turn: Turn) -> None:
        view = CandidatesView(len(turn.completions()))
        self.query_one("#chat-log").mount(view)
        self._candidates = view
        self.call_after_refresh(view.set_results, turn.completions(), turn.chosen)

    # ---- actions ----------------------------------------------------------------------------------

    @on(ChatInput.Submitted)
    async def _submitted(self, event: ChatInput.Submitted) -> None:
        """Send the message (in place of the one being edited, after F4). During a reply, Enter
        stops the reply (it stays as far as it got, as with Esc) and sends. A request the panel
        refuses changes nothing: the text stays in the input."""
        text = event.text.strip()
        if not text:
            return
        await self.stop()
        if not self.app.can_chat:
            self.app.notify(self.app.no_chat_message(), title="no chat with this model", severity="warning")
            return
        request = self.app.build_request(chat=True)
        if request is None:
            return
        self.query_one(ChatInput).clear()
        if self.editing is not None:
            del self.session.turns[self.editing:]
            self.editing = None
            self.show_session(self.session)
        sent = Turn("user", text)
        self.session.turns.append(sent)
        self.query_one("#chat-log").mount(MessageView(sent, len(self.session.turns) - 1))
        self.app.save_session(self.session)
        self._worker = self._generate(request, Continuation(sent=sent))

    def start(self, continuation: Optional["Continuation"] = None) -> bool:
        """Generate the assistant's reply to the conversation as it is (continuing
        `continuation`, if given). Returns whether it started (the panel may refuse)."""
        request = self.app.build_request(chat=True)
        if request is None:
            return False
        self._worker = self._generate(request, continuation or Continuation())
        return True

    @work(exclusive=True, group="generation")
    async def _generate(self, base: CompletionRequest, continuation: "Continuation") -> None:
        partial = continuation.text
        messages = [{"role": "system", "content": self.session.system_prompt}] if self.session.system_prompt else []
        messages += [{"role": t.role, "content": t.content} for t in self.session.turns]
        try:
            prompt = await self.app.client.apply_chat_template(self.app.model, messages) + partial
        except ValueError as error:  # no chat template
            self._undo(continuation, str(error))
            return
        request = replace(base, prompt=Prompt.from_text(prompt))
        turn = Turn("assistant", partial, request=request.to_json())
        self.session.turns.append(turn)
        log = self.query_one("#chat-log", VerticalScroll)
        # Alone, the reply streams above a page of spare lines: the log scrolls to follow it, and
        # the screen's layout is redone once a page (see StreamText). Candidates go below it.
        page = log.scrollable_content_region.height if request.n == 1 else 0
        self._live = LiveReply(partial, reserve=page)  # a MessageView once the reply has ended
        await log.mount(self._live)
        self._candidates = None
        if request.n > 1:
            self._candidates = CandidatesView(request.n)
            await log.mount(self._candidates)
        generation = self.generation = Generation(request, self.app.model)

        def on_text(index: int, text: str) -> None:
            if index == 0:
                turn.content += text
            if not self.showing:
                return
            grew = index == 0 and self._live.append(text)
            if self._candidates is not None:
                self._candidates.append(index, text)
                if grew:
                    log.scroll_end(animate=False)
            elif grew:
                self.call_after_refresh(self._follow)  # once the log knows its new size
            else:
                self._follow()

        try:
            with self.app.steady_cursors():
                await generation.run(self.app.client, self.app.stats, on_text)
        finally:
            self._finish(turn, continuation, generation)

    def _follow(self) -> None:
        """Keep the streaming reply's last line in view."""
        if self._live is not None:
            follow(self.query_one("#chat-log", VerticalScroll), self._live, self._live.text_bottom)

    def _finish(self, turn: Turn, continuation: "Continuation", generation: Generation) -> None:
        """The reply as it ended: whole, stopped part-way (kept as far as it got, marked as
        stopped), or rejected (the conversation as it was before: a message sent with it goes
        back to the input, a reply it was to replace comes back)."""
        if generation.error:
            self.session.turns.remove(turn)
            if self.showing:
                self._live.remove()
                self._live = None
            self._undo(continuation, generation.error)
            return
        if generation.response is not None:
            turn.response = continuation.whole(generation.response.to_json())
            turn.content = turn.completions()[0].get("completion") or ""
        else:
            turn.stopped = True
        self.app.save_session(self.session)
        if not self.showing:
            return
        live, self._live = self._live, None
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(MessageView(turn, self.session.turns.index(turn)), before=live)
        live.remove()
        log.scroll_end(animate=False)
        if self._candidates is not None and generation.response is not None:
            self._candidates.set_results(turn.completions(), turn.chosen)
        elif self._candidates is not None:
            self._candidates.finish()

    def _undo(self, continuation: "Continuation", message: str) -> None:
        """A request refused: the conversation as it was before it (a message sent with it goes
        back to the input, a reply it was to replace comes back)."""
        if continuation.sent is not None:
            self.session.turns.remove(continuation.sent)
        if continuation.replaces is not None:
            self.session.turns.append(continuation.replaces)
        self.app.save_session(self.session)
        if not self.showing:
            return
        self.app.notify(message, title="request rejected", severity="error")
        if continuation.sent is not None:
            chat_input = self.query_one(ChatInput)
            if not chat_input.text:
                chat_input.load_text(continuation.sent.content)
        self.show_session(self.session)

    def regenerate(self) -> None:
        """A new reply in place of the last one. Nothing changes if the request is refused."""
        if self.generating:
            return
        turns = self.session.turns
        replaced = turns[-1] if turns and turns[-1].role == "assistant" else None
        asked = turns[:-1] if replaced else turns
        if not asked or asked[-1].role != "user":
            return
        self._replace_last_reply(Continuation(replaces=replaced))

    def continue_reply(self) -> None:
        """Go on with the last reply where it ended (cut at maximum_tokens, or stopped)."""
        reply = self.last_reply()
        if reply is None or reply is not self.session.turns[-1] or self.generating:
            return
        self._replace_last_reply(Continuation(text=reply.content, tokens=reply.tokens(),
                                              log_probs=reply.log_probs(), replaces=reply))

    def _replace_last_reply(self, continuation: "Continuation") -> None:
        if self.app.build_request(chat=True) is None:  # refused: the reply stays
            return
        if continuation.replaces is not None:
            self.session.turns.remove(continuation.replaces)
        self.show_session(self.session)
        self.start(continuation)

    def edit_last_user_message(self) -> None:
        """Put the last user message in the input to edit it. The conversation from it on is
        dimmed, and replaced when the edited message is sent; Esc puts it back as it was."""
        if self.generating:
            return
        for index in range(len(self.session.turns) - 1, -1, -1):
            if self.session.turns[index].role == "user":
                self.editing = index
                chat_input = self.query_one(ChatInput)
                chat_input.load_text(self.session.turns[index].content)
                chat_input.focus()
                self._show_editing()
                return

    def cancel_edit(self) -> bool:
        """Esc while editing: the message and the replies after it stay as they were."""
        if self.editing is None:
            return False
        self.editing = None
        self.query_one(ChatInput).clear()
        self._show_editing()
        return True

    def _show_editing(self) -> None:
        for view in self.query(MessageView):
            view.set_class(self.editing is not None and view.index >= self.editing, "replaced")

    def last_reply(self) -> Optional[Turn]:
        return next((t for t in reversed(self.session.turns) if t.role == "assistant"), None)

    def branch(self, choice: BranchChoice) -> None:
        """Regenerate the last reply from one of its tokens, with an alternative in its place:
        the reply keeps everything before that token, with its tokens and log-probs."""
        reply = self.last_reply()
        if reply is None or reply is not self.session.turns[-1] or self.generating:
            return
        self._replace_last_reply(Continuation.branch(reply, choice))

    def choose(self, step: int) -> None:
        """Make another candidate of the last reply the reply."""
        reply = self.last_reply()
        if reply is None or len(reply.completions()) < 2 or self.generating:
            return
        reply.chosen = (reply.chosen + step) % len(reply.completions())
        reply.content = reply.completions()[reply.chosen].get("completion", "")
        self.show_session(self.session)
        self.app.save_session(self.session)
