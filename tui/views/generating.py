"""What chat and playground share: a view that runs one generation at a time in a worker, shows
its text as it streams, and its candidates side by side. The view is handed what it needs (the
session, a GenerationService, the key hints) and posts what happened (tui.messages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

from textual import work
from textual.containers import Vertical
from textual.widget import Widget
from textual.worker import Worker, WorkerCancelled, WorkerError, WorkerFailed

from edgecomplete import CompletionRequest

from ..bindings import KeyHints
from ..generation import Generation
from ..messages import GenerationFinished, GenerationStarted, RequestRejected
from ..screens import BranchChoice
from ..service import GenerationService
from ..session import Session, Turn, with_prefix
from ..widgets import CandidatesView


@dataclass
class Continuation:
    """Where a generation starts: after `text` (a branch or a continued reply, with the `tokens`
    and `log_probs` it had), in place of `replaces`, answering `sent` (a message sent with it)."""

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


class GeneratingView(Vertical):
    """A view that runs one Generation at a time in its worker. A subclass says how a generation
    begins (`_begin`: its widgets mounted, the Generation made, or None if refused), shows its
    text (`_show_text`, once a frame) and ends (`_end`, also when stopped or refused); this
    class runs it, and tells the app that it streams (GenerationStarted / GenerationFinished)."""

    def __init__(self, session: Session, service: GenerationService, hints: KeyHints, **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.service = service
        self.hints = hints
        self._worker: Optional[Worker] = None
        self._candidates: Optional[CandidatesView] = None  # several candidates, side by side

    # ---- the worker ----------------------------------------------------------------------------

    @property
    def showing(self) -> bool:
        """The app is running and can show things (not shutting down, when workers are cancelled
        while widgets go away)."""
        return self.app.is_running and self.is_attached

    @property
    def generating(self) -> bool:
        """A generation was started and has not ended (also while its worker is still pending)."""
        return self._worker is not None and not self._worker.is_finished

    def cancel(self) -> bool:
        if self.generating:
            self._worker.cancel()
            return True
        return False

    async def stop(self) -> None:
        """Cancel the generation in progress, if any, and wait until it has ended (its view shows
        it as far as it got)."""
        worker = self._worker
        if worker is None or worker.is_finished:
            return
        worker.cancel()
        try:
            await worker.wait()
        except (WorkerCancelled, WorkerError, WorkerFailed):
            pass

    def cancel_edit(self) -> bool:
        """Esc with no generation to stop: leave what is being edited as it was (if anything)."""
        return False

    def shown_turn(self) -> Optional[Turn]:
        """The reply or completion the view shows last (to inspect or copy), if any."""
        raise NotImplementedError

    def _start(self, request: CompletionRequest, continuation: Continuation) -> None:
        self._worker = self._generate(request, continuation)

    @work(exclusive=True, group="generation")
    async def _generate(self, request: CompletionRequest, continuation: Continuation) -> None:
        """Runs on the app's event loop (not a thread); the view's own methods do the drawing."""
        generation = await self._begin(request, continuation)
        if generation is None:
            return
        self.post_message(GenerationStarted())
        try:
            await self.service.run(generation, self._show_text)
        finally:
            self.post_message(GenerationFinished())
            self._end(generation, continuation)

    async def _begin(self, request: CompletionRequest, continuation: Continuation) -> Optional[Generation]:
        raise NotImplementedError

    def _show_text(self, index: int, text: str) -> None:
        """Text that streamed for candidate `index` since the last frame."""
        raise NotImplementedError

    def _end(self, generation: Generation, continuation: Continuation) -> None:
        raise NotImplementedError

    def _rejected(self, reason: str) -> None:
        self.post_message(RequestRejected(reason))

    # ---- candidates -----------------------------------------------------------------------------

    async def _mount_candidates(self, container: Widget, count: int) -> None:
        """Candidates side by side at the end of `container` while several stream (none for one)."""
        self._candidates = None
        if count > 1:
            self._candidates = CandidatesView(count)
            await container.mount(self._candidates)

    def _end_candidates(self, turn: Optional[Turn], generation: Generation) -> None:
        """The candidates as the generation left them: ranked by the response, with their scores
        (the one `turn` chose marked), or as far as they got (stopped or refused)."""
        if self._candidates is None:
            return
        if generation.response is not None and turn is not None:
            self._candidates.set_results(turn.completions(), turn.chosen)
        else:
            self._candidates.finish()
