"""Playground mode: raw completion of a text buffer. The completion is shown after the text in
another style (coloured by probability with log_probs); accept appends it, reject drops it,
regenerate tries again."""

from __future__ import annotations

from dataclasses import replace
from typing import List, Mapping, Optional

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, TextArea

from edgecomplete import CompletionRequest, Prompt

from .generation import Generation, GenerationOwner
from .screens import BranchChoice
from .session import Session, Turn, with_prefix
from .tokens import coloured
from .widgets import CandidatesView, StreamText, follow, redraw, shown_tokens


class PlaygroundBuffer(TextArea):
    """The text to complete. F5-F7 are the playground's keys here (TextArea's own F6 and F7
    select text). They are ordinary bindings, not priority ones, so they act after every key
    typed before them has reached the buffer."""

    BINDINGS = [
        Binding("f5", "app.generate", "generate", show=False, id="generate"),
        Binding("f6", "app.accept", "accept", show=False, id="accept"),
        Binding("f7", "app.reject", "reject", show=False, id="reject"),
    ]


class PlaygroundView(GenerationOwner, Vertical):
    def __init__(self, session: Session, **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.pending: Optional[Turn] = None  # a completion not yet accepted or rejected
        self._prefix = ""  # branch: text kept in front of the pending completion
        self._candidates: Optional[CandidatesView] = None

    def compose(self) -> ComposeResult:
        yield PlaygroundBuffer(self.session.buffer, id="playground-buffer")
        with VerticalScroll(id="playground-output"):
            yield Static("", id="playground-completion")
            # While a completion streams: drawn a line at a time, above a page of spare lines
            # (see StreamText); the finished one is shown coloured above.
            yield StreamText(classes="hidden", id="playground-live")
        yield Static("", id="playground-hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#playground-hint", Static).update(self.app.key_hint(
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
        request = self.app.build_request(chat=False)
        if request is None:
            return
        self.session.buffer = self.buffer
        self.pending, self._prefix = None, prefix
        self._worker = self._generate(replace(request, prompt=Prompt.from_text(self.buffer + prefix)),
                                      tokens, log_probs)

    @work(exclusive=True, group="generation")
    async def _generate(self, request: CompletionRequest, tokens: Optional[List[str]],
                        log_probs: Optional[List[Mapping[str, float]]]) -> None:
        generation = Generation(request, self.app.model)
        output = self.query_one("#playground-output", VerticalScroll)
        if self._candidates is not None:
            self._candidates.remove()
            self._candidates = None
        if request.n > 1:
            self._candidates = CandidatesView(request.n)
            await output.mount(self._candidates)
        live = [self._prefix]
        stream = self.query_one("#playground-live", StreamText)
        stream.reserve = output.scrollable_content_region.height if request.n == 1 else 0
        stream.clear()
        stream.append(self.buffer[-200:], "dim")
        stream.append(self._prefix, "bold cyan")
        self._show_streaming(True)

        def on_text(index: int, text: str) -> None:
            if index == 0:
                live[0] += text
            if not self.showing:
                return
            if index == 0:
                if stream.append(text):
                    self.call_after_refresh(follow, output, stream, stream.line_count)
                elif self._candidates is None:
                    follow(output, stream, stream.line_count)
            if self._candidates is not None:
                self._candidates.append(index, text)

        try:
            with self.app.steady_cursors():
                await generation.run(self.app.client, self.app.stats, on_text)
        finally:
            if generation.response is not None:
                response = generation.response.to_json()
                if self._prefix:
                    response = with_prefix(response, self._prefix, tokens, log_probs)
                self.pending = Turn("assistant", response["completions"][0].get("completion") or "",
                                    request=request.to_json(), response=response)
            elif not generation.error and live[0]:  # stopped: what came, to accept or reject
                self.pending = Turn("assistant", live[0], request=request.to_json(), stopped=True)
            if self.showing:
                self._finish(generation)

    def _show_streaming(self, streaming: bool) -> None:
        self.query_one("#playground-completion").set_class(streaming, "hidden")
        self.query_one("#playground-live").set_class(not streaming, "hidden")

    def _finish(self, generation: Generation) -> None:
        self._show_streaming(False)
        if generation.error:
            self.app.notify(generation.error, title="request rejected", severity="error")
        elif self._candidates is not None and generation.response is not None:
            self._candidates.set_results(self.pending.completions(), 0)
        if self._candidates is not None and generation.response is None:
            self._candidates.finish()
        self._show_pending()

    def accept(self) -> None:
        if self.pending is None or self.generating:
            return
        buffer = self.query_one("#playground-buffer", TextArea)
        buffer.load_text(self.buffer + self.pending.content)
        self.session.turns.append(self.pending)
        self.session.buffer = buffer.text
        self.pending = None
        self._show_pending()
        self.app.save_session(self.session)

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
