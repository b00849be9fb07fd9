"""The decode loop: every live candidate of a request advances by one token per llama_decode.

Flow of one request:
1. the prompt is evaluated once, on sequence 0, with logits for its last token only (for every
   position when echo asks for the prompt's log-probs);
2. every other candidate shares those KV cells (llama_memory_seq_cp: no data is copied);
3. the first step samples all candidates from that one logits row (each from its own copy);
4. every later step is one batch with one entry per live candidate (its last token, its own
   sequence), and the C sampler samples all rows in one call and feeds each stop matcher;
5. a candidate that ends drops out of the batch and frees its cells;
6. with best_of, the candidates are ranked by mean raw log-prob once all have ended, and only the
   best n are passed on (best_of cannot stream).

Evaluating the whole prompt in one batch keeps the numerics identical to llama.cpp's own path
(a single-token batch can round differently from a larger one, and greedy ties are close).
The loop yields engine events; stream.py turns them into the API's stream items.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ..plan import GenerationPlan
from ..sampling import END_OF_TEXT, STOP_SEQUENCE, Sampler, Sequence, StepResult
from .llama import BATCH_SIZE, BatchEntry, LlamaModel

# Prompt positions per batch when every position needs logits (echo with log_probs): bounds the
# logits buffer to ECHO_BATCH x vocabulary floats.
ECHO_BATCH = 64


@dataclass(frozen=True)
class TokenEntry:
    """One token of a completion as the API reports it: its text (specials rendered; shortened
    when a stop sequence starts inside it), raw log-prob and most likely alternatives."""

    text: bytes
    logprob: Optional[float]  # None for the first prompt token (nothing predicts it)
    top: Tuple[Tuple[int, float], ...] = ()
    token: int = -1


@dataclass(frozen=True)
class PromptEcho:
    """echo: candidate `index` starts with the prompt."""

    index: int
    text: bytes
    raw: bytes
    tokens: Tuple[TokenEntry, ...]


@dataclass(frozen=True)
class TokenSampled:
    """Candidate `index` sampled `token`. `text` is visible text that just became final (it can
    no longer be cut by a stop sequence), `tokens` the token entries that became final with it,
    `raw` the sampled token's raw piece (specials rendered)."""

    index: int
    token: int
    text: bytes
    raw: bytes
    tokens: Tuple[TokenEntry, ...] = ()


@dataclass(frozen=True)
class SequenceFinished:
    """Candidate `index` ended (its last TokenSampled released the rest of its text)."""

    index: int
    finish_reason: str


@dataclass(frozen=True)
class CandidatesDropped:
    """best_of: candidates that were generated but not returned, and their tokens."""

    count: int
    generated: int


EngineEvent = Union[PromptEcho, TokenSampled, SequenceFinished, CandidatesDropped]

_FINISH_REASONS = {END_OF_TEXT: "end_of_text", STOP_SEQUENCE: "stop_sequence_reached"}


@dataclass
class _PendingToken:
    token: int
    start: int  # visible byte span in the candidate's text
    end: int
    logprob: float
    top: Tuple[Tuple[int, float], ...]


@dataclass
class _Candidate:
    index: int
    sequence: Sequence
    position: int  # where its next token goes
    next_token: int = -1
    released: int = 0  # visible bytes already handed out
    text_end: int = 0  # visible bytes generated (before any stop cut)
    pending: List[_PendingToken] = field(default_factory=list)


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
                candidates = [
                    _Candidate(index, Sequence(self.model.vocabulary, config), position=len(plan.prompt_tokens))
                    for index, config in enumerate(plan.samplers)
                ]
                events = self._run(plan, candidates)
                if plan.ranked:
                    events = self._best_of(plan, candidates, events)
                yield from events
            finally:
                self.model.clear()

    # ---- prompt ----------------------------------------------------------------------------

    def _evaluate_prompt(self, plan: GenerationPlan) -> Tuple[int, List[TokenEntry]]:
        """Evaluate the prompt on sequence 0. Returns the address of the last position's logits
        and, for echo, the prompt's token entries (with log-probs when asked for)."""
        model, prompt = self.model, plan.prompt_tokens
        score_prompt = plan.echo and plan.log_probs is not None
        step = ECHO_BATCH if score_prompt else BATCH_SIZE
        scored: List[Tuple[float, Tuple[Tuple[int, float], ...]]] = []
        last_row = 0
        for start in range(0, len(prompt), step):
            chunk = prompt[start : start + step]
            positions = range(start, start + len(chunk))
            logits = model.decode(
                [BatchEntry(t, p, 0, score_prompt or p == len(prompt) - 1) for t, p in zip(chunk, positions)]
            )
            if score_prompt:
                # Row j predicts the token after position start + j; the prompt's last row is
                # kept for sampling.
                n_rows = sum(1 for p in positions if p + 1 < len(prompt))
                targets = [prompt[p + 1] for p in positions if p + 1 < len(prompt)]
                scored += self.sampler.score_rows(logits, n_rows, targets, plan.log_probs or 0)
                last_row = logits + 4 * model.vocab_size * (len(chunk) - 1)
            else:
                last_row = logits
        entries: List[TokenEntry] = []
        if plan.echo:
            vocabulary = model.vocabulary
            entries.append(TokenEntry(vocabulary.piece(prompt[0], raw=True), None, (), prompt[0]))
            for i, token in enumerate(prompt[1:]):
                logprob, top = scored[i] if scored else (None, ())
                entries.append(TokenEntry(vocabulary.piece(token, raw=True), logprob, top, token))
        return last_row, entries

    # ---- generation -------------------------------------------------------------------------

    def _run(self, plan: GenerationPlan, candidates: List[_Candidate]) -> Iterator[EngineEvent]:
        model = self.model
        last_row, echo = self._evaluate_prompt(plan)
        for candidate in candidates[1:]:
            model.copy_sequence(0, candidate.index)
        if plan.echo:
            vocabulary = model.vocabulary
            text = b"".join(vocabulary.piece(t) for t in plan.prompt_tokens)
            raw = b"".join(vocabulary.piece(t, raw=True) for t in plan.prompt_tokens)
            for candidate in candidates:
                yield PromptEcho(candidate.index, text, raw, tuple(echo))
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
                yield self._release(plan, candidate, result, reason is not None)
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

    def _release(self, plan: GenerationPlan, candidate: _Candidate, result: StepResult, finished: bool) -> TokenSampled:
        """The text and token entries of `candidate` that `result` made final."""
        vocabulary = self.model.vocabulary
        final_length = result.text_length if finished else result.stable_length
        text = candidate.sequence.text_slice(candidate.released, final_length)
        candidate.released = final_length
        entries: Tuple[TokenEntry, ...] = ()
        if plan.want_token_entries:
            start = candidate.text_end
            candidate.text_end += len(vocabulary.piece(result.token))
            candidate.pending.append(
                _PendingToken(result.token, start, candidate.text_end, result.logprob, result.top)
            )
            entries = tuple(self._final_entries(candidate, final_length, finished))
        return TokenSampled(candidate.index, result.token, text, vocabulary.piece(result.token, raw=True), entries)

    def _final_entries(self, candidate: _Candidate, final_length: int, finished: bool) -> Iterable[TokenEntry]:
        """Pending tokens that lie within the final text. At the end, the token in which a stop
        sequence starts is shortened to the text before it, and the tokens after it dropped."""
        vocabulary = self.model.vocabulary
        while candidate.pending:
            pending = candidate.pending[0]
            if pending.end <= final_length:
                text = vocabulary.piece(pending.token, raw=True)
            elif finished and pending.start < final_length:
                text = vocabulary.piece(pending.token)[: final_length - pending.start]
            elif finished:
                candidate.pending.clear()  # after the cut
                return
            else:
                return  # not final yet
            candidate.pending.pop(0)
            yield TokenEntry(text, pending.logprob, pending.top, pending.token)

    def _best_of(
        self, plan: GenerationPlan, candidates: List[_Candidate], events: Iterator[EngineEvent]
    ) -> Iterator[EngineEvent]:
        """Hold every candidate's events until all have ended; pass on the best n, renumbered
        in rank order."""
        held: Dict[int, List[EngineEvent]] = {c.index: [] for c in candidates}
        for event in events:
            held[event.index].append(event)
        order = self.sampler.rank([c.sequence for c in candidates])
        for rank, index in enumerate(order[: plan.n]):
            for event in held[index]:
                yield _renumbered(event, rank)
        dropped = [candidates[i] for i in order[plan.n :]]
        yield CandidatesDropped(len(dropped), sum(c.sequence.generated for c in dropped))


def _renumbered(event: EngineEvent, index: int) -> EngineEvent:
    return replace(event, index=index)
