"""Playground mode: raw completion of a text buffer. The completion is shown after the text in
another style (coloured by probability with log_probs); accept appends it, reject drops it,
regenerate tries again."""

from __future__ import annotations

from dataclasses import replace
from typing import List, Mapping, Optional

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static, TextArea

from edgecomplete import CompletionRequest, Prompt

from ..generation import Generation
from ..messages import SessionChanged
from ..screens import BranchChoice
from ..session import Session, Turn
from ..tokens import coloured, shown_tokens
from ..widgets import PlaygroundBuffer, StreamText, follow, redraw
from .generating import Continuation, GeneratingView


class PlaygroundView(GeneratingView):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending: Optional[Turn] = None  # a completion not yet accepted or rejected
        self._streamed = ""  # candidate 0's text so far (a branch's kept text in front)
        self._output: Optional[VerticalScroll] = None
        self._stream: Optional[StreamText] = None

    def compose(self) -> ComposeResult:
        yield PlaygroundBuffer(self.session.buffer, id="playground-buffer")
        with VerticalScroll(id="playground-output"):
            yield Static("", id="playground-completion")
            # While a completion streams: drawn a line at a time, above a page of spare lines
            # (see StreamText); the finished one is shown coloured above.
            yield StreamText(classes="hidden", id="playground-live")
        yield Static("", id="playground-hint", classes="hint")

    def on_mount(self) -> None:
        self._output = self.query_one("#playground-output", VerticalScroll)
        self._stream = self.query_one("#playground-live", StreamText)
        self.query_one("#playground-hint", Static).update(self.hints.line(
            ("generate", "generate"), ("accept", "accept"), ("reject", "reject"), ("cancel", "stop"),
            ("choose_next", "next candidate"), ("inspect", "tokens")))

    @on(TextArea.Changed, "#playground-buffer")
    def _buffer_changed(self, event: TextArea.Changed) -> None:
        self.session.buffer = event.text_area.text

    def show_session(self, session: Session) -> None:
        self.session = session
        self.pending = None
        self.query_one("#playground-buffer", TextArea).load_text(session.buffer)
        self._show_pending()

    @property
    def buffer(self) -> str:
        return self.query_one("#playground-buffer", TextArea).text

    def _show_pending(self) -> None:
        completion = self.query_one("#playground-completion", Static)
        if self.pending is None:
            completion.update(Text("(F5 generates a completion of the text above)", style="dim"))
            return
        text = Text(self.buffer[-200:], style="dim")
        pending = self.pending
        tokens, log_probs = shown_tokens(pending.tokens(), pending.content), pending.log_probs()
        if tokens is not None and log_probs:
            text.append_text(coloured(tokens, log_probs))
        else:
            text.append(pending.content, style="bold cyan")
        if pending.ending:
            text.append(f"  ({pending.ending})", style="italic yellow")
        redraw(completion, text)

    def generate(self, prefix: str = "", tokens: Optional[List[str]] = None,
                 log_probs: Optional[List[Mapping[str, float]]] = None) -> None:
        """Complete the buffer (after `prefix`: a branch, with the `tokens` and `log_probs` that
        made it, kept as part of the completion)."""
        if self.generating:
            return
        request = self.service.request(chat=False)
        if request is None:
            return
        self.session.buffer = self.buffer
        self.pending = None
        self._start(replace(request, prompt=Prompt.from_text(self.buffer + prefix)),
                    Continuation(text=prefix, tokens=tokens, log_probs=log_probs))

    async def _begin(self, request: CompletionRequest, continuation: Continuation) -> Optional[Generation]:
        generation = self.service.generation(request)
        if self._candidates is not None:
            self._candidates.remove()
        await self._mount_candidates(self._output, request.n)
        self._streamed = continuation.text
        stream = self._stream
        stream.reserve = self._output.scrollable_content_region.height if request.n == 1 else 0
        stream.clear()
        stream.append(self.buffer[-200:], "dim")
        stream.append(continuation.text, "bold cyan")
        self._show_streaming(True)
        return generation

    def _show_text(self, index: int, text: str) -> None:
        if index == 0:
            self._streamed += text
        if not self.showing:
            return
        if index == 0:
            stream = self._stream
            if stream.append(text):
                self.call_after_refresh(follow, self._output, stream, stream.line_count)
            elif self._candidates is None:
                follow(self._output, stream, stream.line_count)
        if self._candidates is not None:
            self._candidates.append(index, text)

    def _end(self, generation: Generation, continuation: Continuation) -> None:
        """The completion as it ended, pending (to accept or reject): whole, or stopped part-way
        (what came); a refused one leaves nothing pending."""
        request = generation.request
        if generation.response is not None:
            response = continuation.whole(generation.response.to_json())
            self.pending = Turn("assistant", response["completions"][0].get("completion") or "",
                                request=request.to_json(), response=response)
        elif not generation.error and self._streamed:  # stopped: what came, to accept or reject
            self.pending = Turn("assistant", self._streamed, request=request.to_json(), stopped=True)
        if not self.showing:
            return
        self._show_streaming(False)
        if generation.error:
            self._rejected(generation.error)
        self._end_candidates(self.pending, generation)
        self._show_pending()

    def _show_streaming(self, streaming: bool) -> None:
        self.query_one("#playground-completion").set_class(streaming, "hidden")
        self._stream.set_class(not streaming, "hidden")

    def regenerate(self) -> None:
        self.generate()

    def shown_turn(self) -> Optional[Turn]:
        return self.pending

    def accept(self) -> None:
        if self.pending is None or self.generating:
            return
        buffer = self.query_one("#playground-buffer", TextArea)
        buffer.load_text(self.buffer + self.pending.content)
        self.session.turns.append(self.pending)
        self.session.buffer = buffer.text
        self.pending = None
        self._show_pending()
        self.post_message(SessionChanged(self.session))

    def reject(self) -> None:
        if self.generating:
            return
        self.pending = None
        self._show_pending()

    def branch(self, choice: BranchChoice) -> None:
        """Complete again from one of the pending completion's tokens, with an alternative in its
        place; the completion keeps everything before it, with its tokens and log-probs."""
        if self.pending is None or self.generating:
            return
        tokens, log_probs = self.pending.kept_until(choice.token_index, choice.text)
        self.generate("".join(tokens), tokens, log_probs)

    def choose(self, step: int) -> None:
        """Make another candidate the pending completion (F6 accepts the chosen one)."""
        pending = self.pending
        if pending is None or len(pending.completions()) < 2 or self.generating:
            return
        pending.chosen = (pending.chosen + step) % len(pending.completions())
        pending.content = pending.completions()[pending.chosen].get("completion") or ""
        if self._candidates is not None:
            self._candidates.set_results(pending.completions(), pending.chosen)
        self._show_pending()
