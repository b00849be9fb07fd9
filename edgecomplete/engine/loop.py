"""The decode loop: every live candidate of a request advances by one token per llama_decode.

Flow of one request:
1. the prompt is evaluated once, on sequence 0, with logits for its last token only;
2. every other candidate shares those KV cells (llama_memory_seq_cp: no data is copied);
3. the first step samples all candidates from that one logits row (each from its own copy);
4. every later step is one batch with one entry per live candidate (its last token, its own
   sequence), and the C sampler samples all rows in one call and feeds each stop matcher;
5. a candidate that ends drops out of the batch and frees its cells.

Evaluating the whole prompt in one batch keeps the numerics identical to llama.cpp's own path
(a single-token batch can round differently from a larger one, and greedy ties are close).
The loop yields engine events; stream.py turns them into the API's stream items.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator, List, Union

from ..plan import GenerationPlan
from ..sampling import END_OF_TEXT, STOP_SEQUENCE, Sampler, Sequence
from .llama import BATCH_SIZE, BatchEntry, LlamaModel


@dataclass(frozen=True)
class TokenSampled:
    """Candidate `index` sampled `token`. `text` is visible text that just became final (it can
    no longer be cut by a stop sequence); `raw` is the token's raw piece (specials rendered)."""

    index: int
    token: int
    text: bytes
    raw: bytes


@dataclass(frozen=True)
class SequenceFinished:
    """Candidate `index` ended (its last TokenSampled released the rest of its text)."""

    index: int
    finish_reason: str


EngineEvent = Union[TokenSampled, SequenceFinished]

_FINISH_REASONS = {END_OF_TEXT: "end_of_text", STOP_SEQUENCE: "stop_sequence_reached"}


@dataclass
class _Candidate:
    index: int
    sequence: Sequence
    position: int  # where its next token goes
    next_token: int = -1
    released: int = 0  # visible bytes already handed out


class Engine:
    """One loaded model and its decode loop. One request runs at a time."""

    def __init__(self, model: LlamaModel, model_version: str):
        self.model = model
        self.model_version = model_version
        self.sampler = Sampler(model.vocabulary, model.max_sequences)
        self._lock = threading.Lock()

    def generate(self, plan: GenerationPlan) -> Iterator[EngineEvent]:
        """Run `plan`, yielding events as tokens are sampled. Closing the iterator stops the
        work at once and frees the request's KV cells."""
        with self._lock:
            self.model.clear()  # a request never sees KV state left by another
            try:
                yield from self._run(plan)
            finally:
                self.model.clear()

    def _run(self, plan: GenerationPlan) -> Iterator[EngineEvent]:
        model = self.model
        prompt = plan.prompt_tokens
        for start in range(0, len(prompt), BATCH_SIZE):
            chunk = prompt[start : start + BATCH_SIZE]
            last_row = model.decode(
                [BatchEntry(t, start + j, 0, start + j == len(prompt) - 1) for j, t in enumerate(chunk)]
            )
        candidates = [
            _Candidate(index, Sequence(model.vocabulary, config), position=len(prompt))
            for index, config in enumerate(plan.samplers)
        ]
        for candidate in candidates[1:]:
            model.copy_sequence(0, candidate.index)
        if plan.maximum_tokens == 0:
            for candidate in candidates:
                yield SequenceFinished(candidate.index, "maximum_tokens")
            return

        live = candidates
        results = self.sampler.step_shared([c.sequence for c in live], last_row)
        while True:
            still_live: List[_Candidate] = []
            for candidate, result in zip(live, results):
                reason = _FINISH_REASONS.get(result.status)
                if reason is None and candidate.sequence.generated >= plan.maximum_tokens:
                    reason = "maximum_tokens"
                final_length = result.text_length if reason else result.stable_length
                text = candidate.sequence.text_slice(candidate.released, final_length)
                candidate.released = final_length
                yield TokenSampled(
                    candidate.index, result.token, text, model.vocabulary.piece(result.token, raw=True)
                )
                if reason:
                    model.drop_sequence(candidate.index)
                    yield SequenceFinished(candidate.index, reason)
                else:
                    candidate.next_token = result.token
                    still_live.append(candidate)
            live = still_live
            if not live:
                return
            logits = model.decode([BatchEntry(c.next_token, c.position, c.index, True) for c in live])
            for candidate in live:
                candidate.position += 1
            results = self.sampler.step([c.sequence for c in live], logits, len(live))
