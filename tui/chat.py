"""Chat mode: a conversation in the model's own chat format, streamed replies, regenerate,
edit-and-resend, cancel, candidates side by side, branching from a token."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static, TextArea

from edgecomplete import CompletionRequest, Prompt

from .generation import Generation, GenerationOwner
from .screens import BranchChoice
from .session import Session, Turn
from .widgets import CandidatesView, LiveReply, MessageView, follow


class ChatInput(TextArea):
    """Enter sends; ctrl+j (or shift+enter where the terminal reports it) inserts a newline.

    Keys are applied in the order they arrive, also in a burst (a paste ending in a newline, a
    fast typist, `tmux send-keys`): the send key is an ordinary binding, acted on when the key
    reaches it after every key typed before it, never a priority binding (which the app runs
    as the key arrives, ahead of the characters still queued for this input)."""

    BINDINGS = [
        Binding("enter", "submit", "send", id="send"),
        Binding("ctrl+j,shift+enter", "newline", "newline", id="newline"),
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


class ChatView(GenerationOwner, Vertical):
    """The conversation of a chat Session."""

    def __init__(self, session: Session, **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.generation: Optional[Generation] = None
        self._live: Optional[LiveReply] = None  # the reply being streamed
        self._candidates: Optional[CandidatesView] = None

    def compose(self) -> ComposeResult:
        yield Input(self.session.system_prompt, placeholder="system prompt (optional)", id="system-prompt")
        yield VerticalScroll(id="chat-log")
        yield Static("Enter: send · ctrl+j: newline · Esc: stop · ctrl+r: regenerate · F4: edit · ctrl+l: tokens",
                     id="chat-hint", classes="hint")
        yield ChatInput(id="chat-input")

    def on_mount(self) -> None:
        self.show_session(self.session)

    # ---- showing --------------------------------------------------------------------------------

    @on(Input.Changed, "#system-prompt")
    def _system_prompt_changed(self, event: Input.Changed) -> None:
        self.session.system_prompt = event.value

    def show_session(self, session: Session) -> None:
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
        log.scroll_end(animate=False)

    def _show_candidates(self, turn: Turn) -> None:
        view = CandidatesView(len(turn.completions()))
        self.query_one("#chat-log").mount(view)
        self._candidates = view
        self.call_after_refresh(view.set_results, turn.completions(), turn.chosen)

    # ---- actions ----------------------------------------------------------------------------------

    @on(ChatInput.Submitted)
    async def _submitted(self, event: ChatInput.Submitted) -> None:
        """Send the message. During a reply, Enter stops the reply (it stays as far as it got,
        as with Esc) and sends."""
        text = event.text.strip()
        if not text:
            return
        self.query_one(ChatInput).clear()
        await self.stop()
        self.session.turns.append(Turn("user", text))
        self.query_one("#chat-log").mount(MessageView(self.session.turns[-1], len(self.session.turns) - 1))
        self.app.save_session(self.session)
        self.start()

    def start(self, partial: str = "") -> None:
        """Generate the assistant's reply to the conversation (continuing `partial`)."""
        request = self.app.build_request(chat=True)
        if request is None:
            return
        self._worker = self._generate(request, partial)

    @work(exclusive=True, group="generation")
    async def _generate(self, base: CompletionRequest, partial: str) -> None:
        messages = [{"role": "system", "content": self.session.system_prompt}] if self.session.system_prompt else []
        messages += [{"role": t.role, "content": t.content} for t in self.session.turns]
        prompt = await self.app.client.apply_chat_template(self.app.model, messages) + partial
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
            self._finish(turn, partial, generation)

    def _follow(self) -> None:
        """Keep the streaming reply's last line in view."""
        if self._live is not None:
            follow(self.query_one("#chat-log", VerticalScroll), self._live, self._live.text_bottom)

    def _finish(self, turn: Turn, partial: str, generation: Generation) -> None:
        """The reply as it ended: whole, stopped part-way (kept as far as it got), or rejected."""
        if generation.error:
            self.session.turns.remove(turn)
        elif generation.response is not None:
            turn.response = generation.response.to_json()
            turn.content = partial + (generation.response.completions[0].completion or "")
        self.app.save_session(self.session)
        if not self.showing:
            return
        live, self._live = self._live, None
        if generation.error:
            live.remove()
            if self._candidates is not None:
                self._candidates.remove()
                self._candidates = None
            self.app.notify(generation.error, title="request rejected", severity="error")
            return
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(MessageView(turn, self.session.turns.index(turn)), before=live)
        live.remove()
        log.scroll_end(animate=False)
        if self._candidates is not None and generation.response is not None:
            self._candidates.set_results(turn.completions(), turn.chosen)
        elif self._candidates is not None:
            self._candidates.finish()

    def regenerate(self) -> None:
        if self.generating:
            return
        if self.session.turns and self.session.turns[-1].role == "assistant":
            self.session.turns.pop()
        if self.session.turns and self.session.turns[-1].role == "user":
            self.show_session(self.session)
            self.start()

    def edit_last_user_message(self) -> None:
        """Put the last user message back in the input; the conversation from it on is removed,
        so Enter resends it (edited)."""
        if self.generating:
            return
        for index in range(len(self.session.turns) - 1, -1, -1):
            if self.session.turns[index].role == "user":
                text = self.session.turns[index].content
                del self.session.turns[index:]
                self.show_session(self.session)
                self.query_one(ChatInput).load_text(text)
                self.query_one(ChatInput).focus()
                self.app.save_session(self.session)
                return

    def last_reply(self) -> Optional[Turn]:
        return next((t for t in reversed(self.session.turns) if t.role == "assistant"), None)

    def branch(self, choice: BranchChoice) -> None:
        """Regenerate the last reply from one of its tokens, with an alternative in its place."""
        reply = self.last_reply()
        if reply is None or reply is not self.session.turns[-1] or self.generating:
            return
        tokens = reply.tokens() or []
        partial = "".join(tokens[: choice.token_index]) + choice.text
        self.session.turns.pop()
        self.show_session(self.session)
        self.start(partial)

    def choose(self, step: int) -> None:
        """Make another candidate of the last reply the reply."""
        reply = self.last_reply()
        if reply is None or len(reply.completions()) < 2 or self.generating:
            return
        reply.chosen = (reply.chosen + step) % len(reply.completions())
        reply.content = reply.completions()[reply.chosen].get("completion", "")
        self.show_session(self.session)
        self.app.save_session(self.session)
