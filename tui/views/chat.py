"""Chat mode: a conversation in the model's own chat format, streamed replies, regenerate,
edit-and-resend, cancel, candidates side by side, branching from a token."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Tuple

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from edgecomplete import CompletionRequest, Image
from edgecomplete.prompt import with_images

from ..attachments import conversation, dropped_path, read_image
from ..generation import Generation
from ..messages import ChatUnavailable, SessionChanged
from ..screens import BranchChoice, TextPrompt
from ..session import Session, Turn
from ..widgets import CandidatesView, ChatInput, LiveReply, MessageView, follow
from .generating import Continuation, GeneratingView


class ChatView(GeneratingView):
    """The conversation of a chat Session. `markdown`: replies shown as Markdown (else as their
    raw text); the app sets it with show_markdown."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.markdown = True
        self.editing: Optional[int] = None  # the index of the user message being edited (F4)
        self._reply: Optional[Turn] = None  # the reply being generated ...
        self._live: Optional[LiveReply] = None  # ... as it streams
        self._log: Optional[VerticalScroll] = None
        self.attachments: List[Tuple[str, Image]] = []  # images for the next message: (name, image)

    def compose(self) -> ComposeResult:
        yield Input(self.session.system_prompt, placeholder="system prompt (optional)", id="system-prompt")
        yield VerticalScroll(id="chat-log")
        yield Static("", id="chat-hint", classes="hint")
        yield Static("", id="attachments", classes="hint")
        yield ChatInput(id="chat-input")

    def on_mount(self) -> None:
        self._log = self.query_one("#chat-log", VerticalScroll)
        self.query_one("#chat-hint", Static).update(self.hints.line(
            ("send", "send"), ("newline", "newline"), ("cancel", "stop"), ("regenerate", "regenerate"),
            ("edit", "edit"), ("continue", "continue"), ("inspect", "tokens"), ("attach_image", "image")))
        self.show_session(self.session)
        self._show_attachments()

    # ---- showing --------------------------------------------------------------------------------

    @on(Input.Changed, "#system-prompt")
    def _system_prompt_changed(self, event: Input.Changed) -> None:
        self.session.system_prompt = event.value

    def show_session(self, session: Session) -> None:
        if session is not self.session:
            self.editing = None
        self.session = session
        self.query_one("#system-prompt", Input).value = session.system_prompt
        log = self._log
        log.remove_children()
        for index, turn in enumerate(session.turns):
            log.mount(MessageView(turn, index, self.markdown))
        self._candidates = None
        last = session.turns[-1] if session.turns else None
        if last is not None and len(last.completions()) > 1:
            self._show_candidates(last)
        self._show_editing()
        log.scroll_end(animate=False)

    def show_markdown(self, markdown: bool) -> None:
        """Replies as Markdown (code blocks, lists, emphasis) or as their raw text (coloured by
        probability where log-probs came back)."""
        self.markdown = markdown
        for view in self.query(MessageView):
            view.markdown = markdown
            view.show()

    def _show_candidates(self, turn: Turn) -> None:
        view = CandidatesView(len(turn.completions()))
        self._log.mount(view)
        self._candidates = view
        self.call_after_refresh(view.set_results, turn.completions(), turn.chosen)

    def _changed(self) -> None:
        self.post_message(SessionChanged(self.session))

    # ---- actions ----------------------------------------------------------------------------------

    # ---- images for the next message -------------------------------------------------------------

    def attach(self, path: str) -> None:
        """Attach the image at `path` to the next message (refused with a note if it is not an
        image, or the model takes none)."""
        try:
            image = read_image(path, self.service.vision)
        except ValueError as error:
            self._rejected(str(error))
            return
        name = (dropped_path(path) or Path(path.strip())).name
        self.attachments.append((name, image))
        self._show_attachments()

    def attach_image(self) -> None:
        """Ask for the path of an image to attach to the next message."""
        def chosen(path: Optional[str]) -> None:
            if path:
                self.attach(path)

        self.app.push_screen(TextPrompt("Attach an image to the next message", "path of a PNG, JPEG, ... file"),
                             chosen)

    def remove_attachments(self) -> None:
        self.attachments = []
        self._show_attachments()

    def _show_attachments(self) -> None:
        line = self.query_one("#attachments", Static)
        if self.attachments:
            names = ", ".join(name for name, _ in self.attachments)
            line.update(f"images for the next message: {names} · "
                        + self.hints.line(("attach_image", "another"), ("remove_images", "remove them")))
        line.display = bool(self.attachments)

    @on(ChatInput.ImageDropped)
    def _dropped(self, event: ChatInput.ImageDropped) -> None:
        self.attach(event.path)

    @on(ChatInput.Submitted)
    async def _submitted(self, event: ChatInput.Submitted) -> None:
        """Send the message (in place of the one being edited, after F4), with the attached
        images. During a reply, Enter stops the reply (it stays as far as it got, as with Esc)
        and sends. A request the panel refuses changes nothing: the text stays in the input. A
        message that is only the path of an image file (typed, or dropped where the terminal
        types it) attaches the image instead."""
        text = event.text.strip()
        if dropped_path(text) is not None:
            self.query_one(ChatInput).clear()
            self.attach(text)
            return
        if not text and not self.attachments:
            return
        await self.stop()
        if not self.service.can_chat:
            self.post_message(ChatUnavailable())
            return
        request = self.service.request(chat=True)
        if request is None:
            return
        self.query_one(ChatInput).clear()
        if self.editing is not None:
            del self.session.turns[self.editing:]
            self.editing = None
            self.show_session(self.session)
        sent = Turn("user", text, images=[image.base_64 for _, image in self.attachments])
        self.remove_attachments()
        self.session.turns.append(sent)
        self._log.mount(MessageView(sent, len(self.session.turns) - 1, self.markdown))
        self._changed()
        self._start(request, Continuation(sent=sent))

    async def _begin(self, base: CompletionRequest, continuation: Continuation) -> Optional[Generation]:
        partial = continuation.text
        messages, images = conversation(self.session)
        try:
            prompt = await self.service.chat_prompt(messages) + partial
        except ValueError as error:  # no chat template
            self._undo(continuation, str(error))
            return None
        try:
            request = replace(base, prompt=with_images(prompt, images))
        except ValueError as error:  # a message holds the image marker itself
            self._undo(continuation, str(error))
            return None
        self._reply = Turn("assistant", partial, request=request.to_json())
        self.session.turns.append(self._reply)
        # Alone, the reply streams above a page of spare lines: the log scrolls to follow it, and
        # the screen's layout is redone once a page (see StreamText). Candidates go below it.
        page = self._log.scrollable_content_region.height if request.n == 1 else 0
        self._live = LiveReply(partial, reserve=page)  # a MessageView once the reply has ended
        await self._log.mount(self._live)
        await self._mount_candidates(self._log, request.n)
        return self.service.generation(request)

    def _show_text(self, index: int, text: str) -> None:
        if index == 0:
            self._reply.content += text
        if not self.showing:
            return
        grew = index == 0 and self._live.append(text)
        if self._candidates is not None:
            self._candidates.append(index, text)
            if grew:
                self._log.scroll_end(animate=False)
        elif grew:
            self.call_after_refresh(self._follow)  # once the log knows its new size
        else:
            self._follow()

    def _follow(self) -> None:
        """Keep the streaming reply's last line in view."""
        if self._live is not None:
            follow(self._log, self._live, self._live.text_bottom)

    def _end(self, generation: Generation, continuation: Continuation) -> None:
        """The reply as it ended: whole, stopped part-way (kept as far as it got, marked as
        stopped), or rejected (the conversation as it was before: a message sent with it goes
        back to the input, a reply it was to replace comes back)."""
        turn = self._reply
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
        self._changed()
        if not self.showing:
            return
        live, self._live = self._live, None
        self._log.mount(MessageView(turn, self.session.turns.index(turn), self.markdown), before=live)
        live.remove()
        self._log.scroll_end(animate=False)
        self._end_candidates(turn, generation)

    def _undo(self, continuation: Continuation, message: str) -> None:
        """A request refused: the conversation as it was before it (a message sent with it goes
        back to the input, a reply it was to replace comes back)."""
        if continuation.sent is not None:
            self.session.turns.remove(continuation.sent)
        if continuation.replaces is not None:
            self.session.turns.append(continuation.replaces)
        self._changed()
        if not self.showing:
            return
        self._rejected(message)
        if continuation.sent is not None:
            chat_input = self.query_one(ChatInput)
            if not chat_input.text:
                chat_input.load_text(continuation.sent.content)
            if not self.attachments:  # its images wait for the next message again
                self.attachments = [(f"image {i + 1}", Image(data, None, []))
                                    for i, data in enumerate(continuation.sent.images)]
                self._show_attachments()
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

    def _replace_last_reply(self, continuation: Continuation) -> None:
        request = self.service.request(chat=True)
        if request is None:  # refused: the reply stays
            return
        if continuation.replaces is not None:
            self.session.turns.remove(continuation.replaces)
        self.show_session(self.session)
        self._start(request, continuation)

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

    shown_turn = last_reply

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
        self._changed()
