"""One generation, streamed through the public API: the request, its live text per candidate,
its numbers, and the frames that hand its text to the view. Views own a Generation while it
runs (see tui.views.generating); the UI thread never waits on the model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from edgecomplete import (
    AsyncClient,
    CompletionRequest,
    CompletionResponse,
    CompletionSummary,
    StreamChunk,
    Text,
    TokenizationRequest,
    can_stream,
    candidate_count,
    fold_stream,
)

from .stats import GenerationStats

# Streamed text is shown a frame at a time: the text of every chunk that arrived within a frame is
# handed to the view at once. The model makes a token every few milliseconds, and on a 2-core
# machine whose cores both run llama.cpp every millisecond of UI work is taken from the decode (a
# frame that repaints a line costs ~4 ms of CPU there, a layout pass ~30 ms). So frames are paced
# to keep the UI thread's share of a core (drawing, and taking the stream) near UI_CPU_SHARE: every
# FRAME_SECONDS where frames are cheap, less often (down to SLOWEST_FRAME_SECONDS) where they are
# not. The eye needs no more than ~30 frames a second; streamed text reads well at 6-10.
FRAME_SECONDS = 1 / 30
SLOWEST_FRAME_SECONDS = 1 / 4
UI_CPU_SHARE = 0.08


@dataclass
class Generation:
    """A request in flight. `on_text(index, text)` is called once a frame with the text that
    arrived for candidate `index` since the last frame (and for what is left at the end)."""

    request: CompletionRequest
    model: str
    texts: Dict[int, str] = field(default_factory=dict)
    response: Optional[CompletionResponse] = None
    cancelled: bool = False
    error: Optional[str] = None

    async def run(self, client: AsyncClient, stats: GenerationStats, on_text: Callable[[int, str], None]) -> None:
        # The text's tokens for the numbers bar until the summary counts the whole prompt (images too).
        prompt_text = "".join(item.text for item in self.request.prompt.items if isinstance(item, Text))
        counted = await client.tokenize(TokenizationRequest(prompt_text, tokens=False, token_ids=True), self.model)
        streamed = can_stream(self.request)
        stats.start(len(counted.token_ids or []), streamed=streamed)
        try:
            if not streamed:  # best_of: every candidate must end before they are ranked
                self.response = await client.complete(self.request, self.model)
                for index, result in enumerate(self.response.completions):
                    stats.chunk(len(result.completion_tokens or []))
                    self.texts[index] = result.completion or ""
                    on_text(index, self.texts[index])
            else:
                frames = Frames(on_text)
                items: List = []
                try:
                    async for item in client.complete_with_streaming(self.request, self.model):
                        items.append(item)
                        if isinstance(item, StreamChunk):
                            stats.chunk(len(item.completion_tokens or []))
                            if item.completion:
                                self.texts[item.index] = self.texts.get(item.index, "") + item.completion
                                frames.add(item.index, item.completion)
                        elif isinstance(item, CompletionSummary):
                            stats.prompt_tokens = item.num_tokens_prompt_total // candidate_count(self.request)
                            stats.decode_stats = item.decode_stats
                finally:
                    frames.flush()
                self.response = fold_stream(items)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except ValueError as error:  # the API's validation message
            self.error = str(error)
        finally:
            stats.stop()


class Frames:
    """Collects streamed text per candidate and hands it on once a frame, pacing the frames by the
    UI thread's CPU time (see UI_CPU_SHARE)."""

    def __init__(self, on_text: Callable[[int, str], None]):
        self._on_text = on_text
        self._pending: Dict[int, str] = {}
        self._frame: Optional[asyncio.TimerHandle] = None
        self.interval = FRAME_SECONDS
        self._cpu = time.thread_time()  # the UI thread's CPU time at the last frame

    def add(self, index: int, text: str) -> None:
        self._pending[index] = self._pending.get(index, "") + text
        if self._frame is None:
            self._frame = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._frame is not None:
            self._frame.cancel()
            self._frame = None
        pending, self._pending = self._pending, {}
        for index, text in sorted(pending.items()):
            self._on_text(index, text)
        self._pace()

    def _pace(self) -> None:
        """The next interval: the UI thread's CPU time since the last frame (rendering it, and
        taking the stream) spread so that it stays near UI_CPU_SHARE of the time."""
        cpu = time.thread_time()
        spent, self._cpu = cpu - self._cpu, cpu
        self.interval = min(SLOWEST_FRAME_SECONDS, max(FRAME_SECONDS, spent / UI_CPU_SHARE))
