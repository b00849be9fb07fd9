"""The decode loop: one engine thread per model runs every request's candidates in shared batches.

Flow of one request (a Job):
1. it waits until it has a llama.cpp sequence id per candidate and KV cells for
   prompt + candidates x (maximum_tokens - 1), first come first served (cells of finished
   requests are retired, not freed; when room is needed and nothing runs, the cache is
   compacted: see LlamaModel.retire_sequence);
2. its prompt is evaluated on its first sequence, in chunks that share batches with the decode
   steps of other requests (continuous batching: nobody waits for a long prompt or completion);
3. its other candidates then share those KV cells (llama_memory_seq_cp: no data is copied) and all
   sample their first token from the prompt's last logits row (each from its own copy);
4. every later step adds one entry per live candidate to the batch; one llama_decode serves all
   requests, and one C call samples every decode row and feeds each stop matcher;
5. a candidate that ends drops out; with best_of, the candidates are ranked by mean raw log-prob
   once all have ended and only the best n are passed on;
6. the cells of a finished single-candidate request stay in a prefix slot: a later prompt that
   starts with the same tokens (the next turn of a chat) shares them and evaluates only the rest.

Events go to the job's outbox as they happen; stream.py turns them into the API's stream items.
Cancelling a job stops it before the next decode step and frees its sequences and cells.

One thread per process (the llama thread) runs these steps for every engine, in turn. llama.cpp's
CPU backend uses OpenMP, whose worker teams belong to the calling thread: once two threads have
called llama_decode, libgomp stops spinning at its barriers and every decode gets much slower.
`on_llama_thread` runs other llama.cpp work (a llama-cpp-python model, say) on the same thread.

Evaluating each prompt in whole batches keeps the numerics identical to llama.cpp's own path (a
single-token batch can round differently from a larger one, and greedy ties are close).
"""

from __future__ import annotations

import collections
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, TypeVar, Union

from ..plan import GenerationPlan
from ..sampling import END_OF_TEXT, STOP_SEQUENCE, Sampler, Sequence, StepResult
from .llama import BatchEntry, LlamaModel
from .outbox import CLOSED, Outbox

# Prompt positions per batch when every position needs logits (echo with log_probs): bounds the
# logits buffer to ECHO_BATCH x vocabulary floats.
ECHO_BATCH = 64
# Decode steps of events a consumer may leave untaken before its request pauses.
OUTBOX_STEPS = 64


# ---- events ---------------------------------------------------------------------------------

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


# ---- jobs -------------------------------------------------------------------------------------

class Job:
    """A submitted request. Iterate `events()` (sync) or `aevents()` (async); leaving either
    early, or `cancel()`, stops the request before the engine's next decode step."""

    def __init__(self, plan: GenerationPlan, engine: "Engine"):
        self.plan = plan
        self._engine = weakref.ref(engine)
        self.outbox = Outbox(OUTBOX_STEPS * 2 * len(plan.samplers) + 8, on_take=engine.wake)
        self.cancelled = False
        self.finished = False

    def cancel(self) -> None:
        if not self.finished and not self.cancelled:
            self.cancelled = True
            engine = self._engine()
            if engine:
                engine.wake()

    def _item(self, item):
        if item is CLOSED:
            self.finished = True
            return None
        if isinstance(item, BaseException):
            self.finished = True
            raise item
        return item

    def events(self) -> Iterator[EngineEvent]:
        try:
            while (item := self._item(self.outbox.get())) is not None:
                yield item
        finally:
            self.cancel()

    async def aevents(self) -> AsyncIterator[EngineEvent]:
        try:
            while (item := self._item(await self.outbox.aget())) is not None:
                yield item
        finally:
            self.cancel()


# ---- scheduler state ----------------------------------------------------------------------------

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
    seq_id: int  # llama.cpp sequence id
    position: int  # where its next token goes
    next_token: int = -1
    fed: List[int] = field(default_factory=list)  # generated tokens evaluated into its cells
    released: int = 0  # visible bytes already handed out
    text_end: int = 0  # visible bytes generated (before any stop cut)
    pending: List[_PendingToken] = field(default_factory=list)
    done: bool = False


@dataclass
class _CachedPrefix:
    """A prefix slot: the cells of `tokens` (positions 0 ..) kept under sequence `seq_id`."""

    seq_id: int
    tokens: Tuple[int, ...] = ()
    last_used: int = 0


@dataclass
class _Request:
    job: Job
    cells: int = 0  # new KV cells reserved at admission
    reused: int = 0  # prompt tokens whose cells came from a prefix slot
    candidates: List[_Candidate] = field(default_factory=list)
    prefilled: int = 0  # prompt tokens evaluated (or reused)
    scored: List[Tuple[float, Tuple[Tuple[int, float], ...]]] = field(default_factory=list)
    held: List[EngineEvent] = field(default_factory=list)  # best_of: until every candidate ended

    @property
    def plan(self) -> GenerationPlan:
        return self.job.plan

    @property
    def prefilling(self) -> bool:
        return self.prefilled < len(self.plan.prompt_tokens)

    @property
    def live(self) -> List[_Candidate]:
        return [c for c in self.candidates if not c.done]


class _LlamaThread:
    """The one thread that runs llama.cpp for every engine of the process, one step each in turn."""

    def __init__(self):
        self.wakeup = threading.Condition()
        self.engines: List["Engine"] = []
        self.calls: collections.deque = collections.deque()  # (callable, future)
        self.thread: Optional[threading.Thread] = None

    def start(self) -> None:  # under self.wakeup
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="edgecomplete-llama", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while True:
            with self.wakeup:
                while not self.calls and not any(e._has_work() for e in self.engines):
                    self.wakeup.wait()
                call = self.calls.popleft() if self.calls else None
                busy = [e for e in self.engines if e._has_work()]
                for engine in busy:
                    engine._admit()
            if call is not None:
                function, future = call
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function())
                    except BaseException as error:  # handed to the caller
                        future.set_exception(error)
            for engine in busy:
                engine._run_step()


_llama_thread = _LlamaThread()
T = TypeVar("T")


def on_llama_thread(function: Callable[[], T]) -> T:
    """Run `function` on the thread that runs llama.cpp for edgecomplete, and return its result.

    Use it for other llama.cpp work in the same process (a llama-cpp-python model, say), so that
    llama.cpp's OpenMP worker teams are not duplicated per thread (which slows every decode).
    """
    if threading.current_thread() is _llama_thread.thread:
        return function()
    future: Future = Future()
    with _llama_thread.wakeup:
        _llama_thread.calls.append((function, future))
        _llama_thread.start()
        _llama_thread.wakeup.notify()
    return future.result()


class Engine:
    """One loaded model and its requests; the llama thread runs its decode loop."""

    def __init__(self, model: LlamaModel, model_version: str, prefix_cache: bool = True):
        self.model = model
        self.model_version = model_version
        self.sampler = Sampler(model.vocabulary, model.max_sequences)
        self._wakeup = _llama_thread.wakeup
        self._waiting: List[_Request] = []  # admission order
        self._active: List[_Request] = []
        self._free_ids = list(range(model.max_sequences))
        self._reserved_cells = 0  # by running requests
        self._retired_cells = 0  # upper bound of the retired cells (freed by compaction)
        self._prefixes = [_CachedPrefix(seq_id) for seq_id in model.prefix_sequences]
        self._reuse_prefixes = prefix_cache and not model.has_sliding_window
        self._clock = 0
        self.prompt_tokens_evaluated = 0
        self.prompt_tokens_reused = 0
        self._closed = False
        with self._wakeup:
            _llama_thread.engines.append(self)

    # ---- faces' side ----------------------------------------------------------------------------

    def submit(self, plan: GenerationPlan) -> Job:
        """Queue `plan`; its events arrive in the returned job."""
        job = Job(plan, self)
        with self._wakeup:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._waiting.append(_Request(job))
            _llama_thread.start()
            self._wakeup.notify()
        return job

    def generate(self, plan: GenerationPlan) -> Iterator[EngineEvent]:
        """`plan`'s events, for synchronous code; closing the iterator cancels the request."""
        return self.submit(plan).events()

    def wake(self) -> None:
        with self._wakeup:
            self._wakeup.notify()

    def stats(self) -> Dict[str, int]:
        """Requests and KV state right now: once every request ended, no candidate sequence
        holds cells (retired cells wait for the next compaction; prefix slots keep theirs)."""
        def read():
            return {
                "requests_waiting": len(self._waiting),
                "requests_active": len(self._active),
                "sequence_ids_in_use": self.model.max_sequences - len(self._free_ids),
                "sequences_with_cells": sum(self.model.holds_cells(s) for s in range(self.model.max_sequences)),
                "retired_cells": self._retired_cells,
                "cached_prefix_tokens": sum(len(p.tokens) for p in self._prefixes),
                "prompt_tokens_evaluated": self.prompt_tokens_evaluated,
                "prompt_tokens_reused": self.prompt_tokens_reused,
            }
        return on_llama_thread(read)

    def close(self) -> None:
        """Fail the requests still queued or running, and free the model (on the llama thread,
        between two steps)."""
        def shut_down():
            with self._wakeup:
                self._closed = True
                requests, self._waiting = self._waiting + self._active, []
                self._active = []
                if self in _llama_thread.engines:
                    _llama_thread.engines.remove(self)
            for request in requests:
                request.job.outbox.put(RuntimeError("the engine was closed"))
                request.job.outbox.put(CLOSED)
            self.model.close()
        on_llama_thread(shut_down)

    # ---- on the llama thread --------------------------------------------------------------------

    def _run_step(self) -> None:
        self._drop_cancelled()
        try:
            self._iteration()
        except Exception as error:  # keep serving: fail the requests in flight, not the engine
            self._fail_active(error)

    def _has_work(self) -> bool:  # under self._wakeup
        if self._closed:
            return False
        if self._waiting:
            first = self._waiting[0]
            if first.job.cancelled or not self._active or self._fits(first):
                return True
        return any(r.job.cancelled or r.prefilling or (r.live and not self._paused(r)) for r in self._active)

    # ---- KV cells: reservation, prefix reuse, retirement ----------------------------------------

    def _free_cells(self) -> int:
        cached = sum(len(p.tokens) for p in self._prefixes)
        return self.model.context_length - self._reserved_cells - self._retired_cells - cached

    def _best_prefix(self, plan: GenerationPlan) -> Tuple[Optional[_CachedPrefix], int]:
        """The prefix slot sharing most leading tokens with the prompt (at most all but its last
        token, whose logits must be computed), when the prompt's logits are not needed."""
        if not self._reuse_prefixes or self._scores_prompt(plan):
            return None, 0
        best, best_length = None, 0
        prompt = plan.prompt_tokens
        for prefix in self._prefixes:
            length, limit = 0, min(len(prefix.tokens), len(prompt) - 1)
            while length < limit and prefix.tokens[length] == prompt[length]:
                length += 1
            if length > best_length:
                best, best_length = prefix, length
        return best, best_length

    def _cells_needed(self, request: _Request) -> int:
        plan = request.plan
        _, reused = self._best_prefix(plan)
        return len(plan.prompt_tokens) - reused + len(plan.samplers) * max(plan.maximum_tokens - 1, 0)

    def _fits(self, request: _Request) -> bool:
        return (len(request.plan.samplers) <= len(self._free_ids)
                and self._cells_needed(request) <= self._free_cells())

    def _paused(self, request: _Request) -> bool:
        """A consumer that does not keep up holds its request back (never the engine)."""
        return not request.plan.ranked and request.job.outbox.room() < 2 * len(request.candidates) + 2

    def _retire_prefix(self, prefix: _CachedPrefix) -> None:
        if prefix.tokens:
            self.model.retire_sequence(prefix.seq_id)
            self._retired_cells += len(prefix.tokens)
            prefix.tokens = ()

    def _make_room(self, request: _Request) -> None:
        """The oldest waiting request does not fit. Once nothing runs: drop the retired cells and,
        while that is not enough, the prefix slots, least recently used first and the one the
        request reuses last; then compact once."""
        if self._active:
            return
        self._retired_cells = 0  # the compaction below frees them
        reused, length = self._best_prefix(request.plan)
        for prefix in sorted(self._prefixes, key=lambda p: (p is reused, p.last_used)):
            if self._cells_needed(request) <= self._free_cells():
                break
            if prefix is reused and len(prefix.tokens) > length:  # keep just what is reused
                self.model.truncate_sequence(prefix.seq_id, length)
                prefix.tokens = prefix.tokens[:length]
                if self._cells_needed(request) <= self._free_cells():
                    break
            prefix.tokens = ()
        self._compact()

    def _compact(self) -> None:
        self.model.compact([p.seq_id for p in self._prefixes if p.tokens])
        self._retired_cells = 0

    def _admit(self) -> None:  # under self._wakeup
        """First come, first served: the oldest waiting request goes first."""
        while self._waiting:
            request = self._waiting[0]
            if request.job.cancelled:
                self._waiting.pop(0)
                request.job.outbox.put(CLOSED)
                continue
            if not self._fits(request):
                self._make_room(request)
                if not self._fits(request):
                    return
            self._waiting.pop(0)
            prefix, reused = self._best_prefix(request.plan)
            request.cells = self._cells_needed(request)
            self._reserved_cells += request.cells
            prompt_length = len(request.plan.prompt_tokens)
            for index, config in enumerate(request.plan.samplers):
                seq_id = self._free_ids.pop(0)
                self.model.drop_sequence(seq_id)  # a request never sees KV state left by another
                request.candidates.append(
                    _Candidate(index, Sequence(self.model.vocabulary, config), seq_id, position=prompt_length)
                )
            if prefix is not None:
                self.model.copy_sequence(prefix.seq_id, request.candidates[0].seq_id, end=reused)
                self._clock += 1
                prefix.last_used = self._clock
                request.reused = request.prefilled = reused
                self.prompt_tokens_reused += reused
            self._active.append(request)

    def _release_request(self, request: _Request) -> None:
        """Free the request's sequence ids. Its cells are retired until no request runs, but
        those of a single candidate go to a prefix slot first, for the next prompt to reuse."""
        prompt = request.plan.prompt_tokens
        own = [c.position - len(prompt) for c in request.candidates]
        new_cells = request.prefilled - request.reused + sum(own)
        first = request.candidates[0]
        if self._reuse_prefixes and len(request.candidates) == 1 and request.prefilled > 0:
            slot = min(self._prefixes, key=lambda p: (bool(p.tokens), p.last_used))
            self._retire_prefix(slot)
            self.model.copy_sequence(first.seq_id, slot.seq_id)
            slot.tokens = tuple(prompt[: request.prefilled]) + tuple(first.fed)
            self._clock += 1
            slot.last_used = self._clock
            new_cells -= request.prefilled - request.reused + own[0]  # counted in the slot now
        for candidate in request.candidates:
            self.model.retire_sequence(candidate.seq_id)
        with self._wakeup:
            self._active.remove(request)
            self._free_ids.extend(c.seq_id for c in request.candidates)
            self._reserved_cells -= request.cells
            self._retired_cells += max(new_cells, 0)
            idle = not self._active and not self._waiting
        if idle and self._retired_cells:
            # Keep the cache small and gapless: llama.cpp's CPU attention for a single token
            # splits a span of 512 cells or more across threads, and its rounding then depends
            # on where cells lie.
            self._compact()

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._active if r.job.cancelled]:
            self._release_request(request)
            request.job.outbox.put(CLOSED)

    def _fail_active(self, error: Exception) -> None:
        for request in list(self._active):
            self._release_request(request)
            request.job.outbox.put(error)
            request.job.outbox.put(CLOSED)

    # ---- one decode step for everyone --------------------------------------------------------------

    def _iteration(self) -> None:
        decoding = [(r, c) for r in self._active if not r.prefilling and not self._paused(r) for c in r.live]
        entries = [BatchEntry(c.next_token, c.position, c.seq_id, True) for _, c in decoding]
        prefills: List[Tuple[_Request, int, int]] = []  # request, first position, tokens
        budget = self.model.batch_size - len(entries)
        for request in self._active:
            if budget <= 0:
                break
            if not request.prefilling:
                continue
            prompt = request.plan.prompt_tokens
            score = self._scores_prompt(request.plan)
            count = min(budget, len(prompt) - request.prefilled)
            if score:
                count = min(count, ECHO_BATCH)
            first = request.prefilled
            primary = request.candidates[0].seq_id
            for p in range(first, first + count):
                entries.append(BatchEntry(prompt[p], p, primary, score or p == len(prompt) - 1))
            prefills.append((request, first, count))
            budget -= count
        if not entries:
            return
        logits = self.model.decode(entries)
        row_bytes = 4 * self.model.vocab_size
        if decoding:
            for _, candidate in decoding:
                candidate.position += 1
                candidate.fed.append(candidate.next_token)
            results = self.sampler.step([c.sequence for _, c in decoding], logits, len(decoding))
            for (request, candidate), result in zip(decoding, results):
                self._after_step(request, candidate, result)
        row = logits + row_bytes * len(decoding)
        for request, first, count in prefills:
            prompt = request.plan.prompt_tokens
            request.prefilled += count
            self.prompt_tokens_evaluated += count
            if self._scores_prompt(request.plan):
                targets = [prompt[p + 1] for p in range(first, first + count) if p + 1 < len(prompt)]
                request.scored += self.sampler.score_rows(row, len(targets), targets, request.plan.log_probs or 0)
                row += row_bytes * len(targets)
            if not request.prefilling:
                self._start(request, row)
                row += row_bytes

    @staticmethod
    def _scores_prompt(plan: GenerationPlan) -> bool:
        return plan.echo and plan.log_probs is not None

    def _start(self, request: _Request, last_row: int) -> None:
        """The prompt is in: share it with every candidate and sample their first tokens."""
        plan, vocabulary = request.plan, self.model.vocabulary
        primary = request.candidates[0].seq_id
        for candidate in request.candidates[1:]:
            self.model.copy_sequence(primary, candidate.seq_id)
        if plan.echo:
            prompt = plan.prompt_tokens
            entries = [TokenEntry(vocabulary.piece(prompt[0], raw=True), None, (), prompt[0])]
            for i, token in enumerate(prompt[1:]):
                logprob, top = request.scored[i] if request.scored else (None, ())
                entries.append(TokenEntry(vocabulary.piece(token, raw=True), logprob, top, token))
            text = b"".join(vocabulary.piece(t) for t in prompt)
            raw = b"".join(vocabulary.piece(t, raw=True) for t in prompt)
            for candidate in request.candidates:
                self._emit(request, PromptEcho(candidate.index, text, raw, tuple(entries)))
        if plan.maximum_tokens == 0:
            for candidate in request.candidates:
                candidate.done = True
                self._emit(request, SequenceFinished(candidate.index, "maximum_tokens"))
            self._finish(request)
            return
        results = self.sampler.step_shared([c.sequence for c in request.candidates], last_row)
        for candidate, result in zip(request.candidates, results):
            self._after_step(request, candidate, result)

    def _after_step(self, request: _Request, candidate: _Candidate, result: StepResult) -> None:
        plan = request.plan
        reason = _FINISH_REASONS.get(result.status)
        if reason is None and candidate.sequence.generated >= plan.maximum_tokens:
            reason = "maximum_tokens"
        self._emit(request, self._release(plan, candidate, result, reason is not None))
        if reason:
            candidate.done = True
            self._emit(request, SequenceFinished(candidate.index, reason))
            if not request.live:
                self._finish(request)
        else:
            candidate.next_token = result.token

    def _emit(self, request: _Request, event: EngineEvent) -> None:
        if request.plan.ranked:
            request.held.append(event)
        else:
            request.job.outbox.put(event)

    def _finish(self, request: _Request) -> None:
        """Every candidate ended: pass on the best n (best_of) and close the job."""
        if request.plan.ranked:
            order = self.sampler.rank([c.sequence for c in request.candidates])
            rank_of = {index: rank for rank, index in enumerate(order)}
            kept = [e for e in request.held if rank_of[e.index] < request.plan.n]
            kept.sort(key=lambda e: rank_of[e.index])  # stable: each candidate's events stay in order
            for event in kept:
                request.job.outbox.put(replace(event, index=rank_of[event.index]))
            dropped = [request.candidates[i] for i in order[request.plan.n :]]
            request.job.outbox.put(CandidatesDropped(len(dropped), sum(c.sequence.generated for c in dropped)))
        self._release_request(request)
        request.job.outbox.put(CLOSED)

    # ---- text and token entries ---------------------------------------------------------------

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
