"""The numbers of a generation (time to first token, tokens per second, the context in use): data
the generation updates and the stats bar shows, kept apart from both."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from edgecomplete import DecodeStats

from .session import Session


@dataclass
class GenerationStats:
    """The numbers people ask for, of the generation in progress (or the last one)."""

    context_length: int = 0
    prompt_tokens: int = 0
    generated: int = 0
    started: float = 0.0
    first_chunk: Optional[float] = None
    finished: Optional[float] = None
    running: bool = False

    streamed: bool = True  # best_of > 1 comes back whole: no time to first token
    decode_stats: Optional[DecodeStats] = None  # of the last generation, when the local engine ran it

    def start(self, prompt_tokens: int, streamed: bool = True) -> None:
        self.prompt_tokens, self.generated = prompt_tokens, 0
        self.started, self.first_chunk, self.finished = time.perf_counter(), None, None
        self.running, self.streamed = True, streamed
        self.decode_stats = None

    def chunk(self, tokens: int) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.perf_counter()
        self.generated += tokens

    def stop(self) -> None:
        self.finished = time.perf_counter()
        self.running = False

    def show_session(self, session: Session) -> bool:
        """The context in use as the session's last reply left it (a session opened); nothing
        changes while a generation runs. Returns whether the numbers changed."""
        if self.running:
            return False
        last = next((t for t in reversed(session.turns) if t.response), None)
        response = last.response if last is not None else {}
        candidates = max(len(last.completions()) if last else 1, 1)
        self.prompt_tokens = response.get("num_tokens_prompt_total", 0) // candidates
        self.generated = response.get("num_tokens_generated", 0)
        self.first_chunk = self.finished = None
        self.decode_stats = None
        return True

    @property
    def time_to_first_token(self) -> Optional[float]:
        return None if self.first_chunk is None or not self.streamed else self.first_chunk - self.started

    @property
    def accepted_per_step(self) -> Optional[float]:
        """Drafted tokens accepted per decode step (speculation), once a generation reported it."""
        return None if self.decode_stats is None else self.decode_stats.accepted_per_step

    @property
    def tokens_per_second(self) -> Optional[float]:
        end = self.finished or time.perf_counter()
        if not self.streamed:  # every candidate's tokens, over the whole time
            return self.generated / max(end - self.started, 1e-6) if self.finished and self.generated else None
        if self.first_chunk is None or self.generated < 2:
            return None
        return (self.generated - 1) / max(end - self.first_chunk, 1e-6)
