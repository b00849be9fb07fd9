"""The decode loop of one model: every request's candidates run in shared batches.

Flow of one request (a Job):
1. it waits until it has a llama.cpp sequence id per candidate and KV cells for
   prompt + candidates x (maximum_tokens - 1), first come first served (kv.py: cells of ended
   requests are retired, and the cache compacted when room is needed and nothing runs);
2. its prompt is evaluated on its first sequence, in chunks that share batches with the decode
   steps of other requests (continuous batching: nobody waits for a long prompt or completion);
3. its other candidates then share those KV cells (llama_memory_seq_cp: no data is copied) and all
   sample their first token from the prompt's last logits row (each from its own copy);
4. every later step adds one entry per live candidate to the batch; one llama_decode serves all
   requests, and one C call samples every decode row and feeds each stop matcher;
   speculation: a candidate whose text repeats its context adds the tokens that followed there
   (drafts.py) after its entry, and keeps those it samples itself (one step yields several
   tokens, the same tokens decoding without drafts yields); its rejected drafts' cells go;
5. a candidate that ends drops out; with best_of, the candidates are ranked by mean raw log-prob
   once all have ended and only the best n are passed on;
6. the cells of a finished single-candidate request stay in a prefix slot: a later prompt that
   starts with the same tokens (the next turn of a chat) shares them and evaluates only the rest.

Events (events.py) go to the job's outbox as they happen; stream.py turns them into the API's
stream items. Cancelling a job stops it before the next decode step and frees its sequences.
The llama thread (thread.py) drives `has_work`, `admit` and `step`.

Evaluating each prompt in whole batches keeps the numerics identical to llama.cpp's own path (a
single-token batch can round differently from a larger one, and greedy ties are close).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Dict, Iterator, List, Optional, Tuple

from ..backend import BusyError
from ..plan import GenerationPlan, ImageSpan
from ..sampling import END_OF_TEXT, NO_TOKEN, STOP_SEQUENCE, Sampler, Sequence, StepResult
from ..validation import InvalidRequest
from .drafts import MAX_DRAFT, Draft, Drafter, DraftPolicy, PromptIndex
from .events import CandidatesDropped, Decoded, EngineEvent, PromptEcho, SequenceFinished, TokenEntry, TokenSampled
from .jobs import Job
from .kv import KvCells, Lease
from .llama import BatchEntry, LlamaModel
from .text import CandidateText, spelled
from .thread import llama_thread, on_llama_thread
from .vision import Projector

# Prompt positions per batch when every position needs logits (echo with log_probs): bounds the
# logits buffer to ECHO_BATCH x vocabulary floats.
ECHO_BATCH = 64

_FINISH_REASONS = {END_OF_TEXT: "end_of_text", STOP_SEQUENCE: "stop_sequence_reached"}

# Decode steps one steering group runs before the next group's turn (bench.steering).
STEPS_PER_TURN = 8


@dataclass
class _Candidate:
    index: int
    sequence: Sequence
    text: CandidateText
    seq_id: int  # llama.cpp sequence id
    next_position: int
    next_token: int = -1  # sampled, to be evaluated in the next step
    evaluated: List[int] = field(default_factory=list)  # generated tokens in its KV cells
    done: bool = False
    drafter: Optional[Drafter] = None  # speculation on
    drafts: List[int] = field(default_factory=list)  # drafted after next_token, in this step's batch
    draft: Draft = field(default_factory=lambda: Draft([], 0))  # proposed, of which `drafts` is verified (DraftPolicy)
    steps: int = 0  # decode steps that sampled it


@dataclass
class _Request:
    job: Job
    lease: Lease
    candidates: List[_Candidate]
    prompt_in_cache: int = 0  # prompt tokens evaluated or reused
    prompt_scores: List[Tuple[float, Tuple[Tuple[int, float], ...]]] = field(default_factory=list)
    unranked_events: List[EngineEvent] = field(default_factory=list)  # best_of: until all ended
    failed: bool = False  # ended by an error of its own (its other candidates' results are dropped)

    @property
    def plan(self) -> GenerationPlan:
        return self.job.plan

    @property
    def prefilling(self) -> bool:
        return self.prompt_in_cache < len(self.plan.prompt_tokens)

    @property
    def live(self) -> List[_Candidate]:
        return [c for c in self.candidates if not c.done]

    def image_at_head(self) -> Optional[ImageSpan]:
        """The image chunk its prefill has reached, if any."""
        return next((span for span in self.plan.images if span.start == self.prompt_in_cache), None)

    def text_until(self) -> int:
        """Where the prompt's text from the prefill's position on ends: the next image or the end."""
        return min((s.start for s in self.plan.images if s.start >= self.prompt_in_cache),
                   default=len(self.plan.prompt_tokens))


@dataclass
class _Batch:
    """One llama_decode's entries: a decode entry per live candidate first, then prompt chunks."""

    entries: List[BatchEntry] = field(default_factory=list)
    decoding: List[Tuple[_Request, _Candidate]] = field(default_factory=list)  # entries: next token + drafts
    prefills: List[Tuple[_Request, int, int]] = field(default_factory=list)  # request, first position, count


class _Rows:
    """Walks the logits rows of a decode, in batch order."""

    def __init__(self, address: int, row_bytes: int):
        self.address, self.row_bytes = address, row_bytes

    def take(self, count: int) -> int:
        address = self.address
        self.address += self.row_bytes * count
        return address


class Engine:
    """One loaded model and its requests; the llama thread runs its decode loop."""

    def __init__(self, model: LlamaModel, model_version: str, prefix_cache: bool = True,
                 max_waiting: Optional[int] = None, projector: Optional[Projector] = None,
                 speculation: bool = True):
        """max_waiting: requests that may wait for admission at once; one more is refused with
        BusyError (None: no limit). projector: the model's vision projector, which encodes the
        images of prompts. speculation: draft tokens from each request's own text and verify
        them in the decode batch (the text is the same; False: one token per step)."""
        self.model = model
        # Rows of a step that may carry drafts: as many as decode exactly like single rows here
        # (LlamaModel.rows_exact_in_batch); with one, no speculation.
        probe = on_llama_thread(lambda: model.rows_exact_in_batch(1 + MAX_DRAFT)) if speculation else None
        self.speculation_rows = probe.rows if probe else 1
        self.projector = projector
        self.images_encoded = 0
        self.max_waiting = max_waiting
        self.model_version = model_version
        self.draft_policy = DraftPolicy(self.speculation_rows, seconds=dict(probe.seconds) if probe else {})
        self.sampler = Sampler(model.vocabulary, model.max_sequences, max_draft_rows=self.speculation_rows)
        self.kv = KvCells(model, reuse_prefixes=prefix_cache)
        self._lock = llama_thread.lock
        self._waiting: List[Job] = []  # admission order
        self._active: List[_Request] = []
        self._group_key: Tuple = ()  # the control vector of the last step's requests
        self._turn_steps = 0  # steps in a row under it
        self._applied_key: Tuple = ()  # the one set on the context
        self.prompt_tokens_evaluated = 0
        self.prompt_tokens_reused = 0
        self._closed = False
        llama_thread.add(self)

    # ---- the faces' side --------------------------------------------------------------------------

    def submit(self, plan: GenerationPlan) -> Job:
        """Queue `plan`; its events arrive in the returned job."""
        job = Job(plan, self)
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if self.max_waiting is not None and len(self._waiting) >= self.max_waiting:
                raise BusyError(f"{self.model_version}: {len(self._waiting)} requests are already waiting "
                                f"(at most {self.max_waiting}); try again shortly")
            self._waiting.append(job)
            llama_thread.start()
            self._lock.notify()
        return job

    def generate(self, plan: GenerationPlan) -> Iterator[EngineEvent]:
        """`plan`'s events, for synchronous code; closing the iterator cancels the request."""
        return self.submit(plan).events()

    def wake(self) -> None:
        with self._lock:
            self._lock.notify()

    def stats(self) -> Dict[str, int]:
        """Requests and KV state right now: once every request ended, no candidate sequence
        holds cells (retired cells wait for the next compaction; prefix slots keep theirs)."""
        def read():
            return {
                "requests_waiting": len(self._waiting),
                "requests_active": len(self._active),
                "sequence_ids_in_use": self.model.max_sequences - len(self.kv.free_ids),
                "sequences_with_cells": sum(self.model.holds_cells(s) for s in range(self.model.max_sequences)),
                "retired_cells": self.kv.retired_cells,
                "cached_prefix_tokens": self.kv.cached_prefix_tokens,
                "prompt_tokens_evaluated": self.prompt_tokens_evaluated,
                "prompt_tokens_reused": self.prompt_tokens_reused,
                "images_encoded": self.images_encoded,
                "speculation_rows": self.speculation_rows,
            }
        return on_llama_thread(read)

    def close(self) -> None:
        """Fail the requests still queued or running, and free the model (on the llama thread,
        between two steps)."""
        def shut_down():
            with self._lock:
                self._closed = True
                jobs = self._waiting + [r.job for r in self._active]
                self._waiting, self._active = [], []
                llama_thread.remove(self)
            for job in jobs:
                job.close(RuntimeError("the engine was closed"))
            if self.projector is not None:  # before the model it was loaded for
                self.projector.close()
            self.model.close()
        on_llama_thread(shut_down)

    # ---- driven by the llama thread ------------------------------------------------------------

    def has_work(self) -> bool:  # under the lock
        if self._closed:
            return False
        if self._waiting:
            first = self._waiting[0]
            if first.cancelled or not self._active or self.kv.fits(first.plan):
                return True
        return any(r.job.cancelled or r.prefilling or (r.live and not self._paused(r)) for r in self._active)

    def admit(self) -> None:  # under the lock
        """First come, first served: the oldest waiting request goes first."""
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.pop(0)
                job.close()
                continue
            if not self.kv.fits(job.plan):
                if self._active:
                    return
                self.kv.make_room(job.plan)
                if not self.kv.fits(job.plan):
                    return
            self._waiting.pop(0)
            try:
                request = self._start_request(job)
            except Exception as error:  # fails this request (with its error), never the engine
                job.close(error)
                continue
            self._active.append(request)

    def step(self) -> None:
        self._drop_cancelled()
        try:
            group = self._steering_group()
            self._evaluate_image(group)
            batch = self._next_batch([r for r in group if r in self._active])  # one may have ended
            if not batch.entries:
                return
            started = time.perf_counter()
            rows = _Rows(self.model.decode(batch.entries), 4 * self.model.vocab_size)
            if not batch.prefills:  # what a decode of this many rows costs, for DraftPolicy
                self.draft_policy.record_decode(len(batch.entries), time.perf_counter() - started)
            self._sample_decoded(batch, rows)
            self._advance_prompts(batch.prefills, rows)
        except Exception as error:  # keep serving: fail the requests in flight, not the engine
            for request in list(self._active):
                self._end_request(request)
                request.job.close(error)

    # ---- requests ---------------------------------------------------------------------------------

    def _start_request(self, job: Job) -> _Request:
        # The C sequences first: a config the C side refuses fails the request before it holds cells.
        sequences = [Sequence(self.model.vocabulary, config) for config in job.plan.samplers]
        lease = self.kv.lease(job.plan)
        prompt_length = len(job.plan.prompt_tokens)
        drafts = self.speculation_rows > 1 and job.plan.maximum_tokens > 2  # room for a draft after a token
        prompt_index = PromptIndex(job.plan.prompt_tokens) if drafts else None
        candidates = []
        for index, (sequence, seq_id) in enumerate(zip(sequences, lease.seq_ids)):
            text = CandidateText(sequence, self.model.vocabulary)
            drafter = Drafter(prompt_index) if prompt_index is not None else None
            candidates.append(_Candidate(index, sequence, text, seq_id, next_position=prompt_length, drafter=drafter))
        self.prompt_tokens_reused += lease.reused_tokens
        return _Request(job, lease, candidates, prompt_in_cache=lease.reused_tokens)

    def _paused(self, request: _Request) -> bool:
        """A consumer that does not keep up holds its request back (never the engine)."""
        return not request.plan.ranked and request.job.outbox.room() < 2 * len(request.candidates) + 2

    def _end_request(self, request: _Request) -> None:
        prompt = request.plan.prompt_tokens[: request.prompt_in_cache]
        self.kv.end(request.lease, prompt, [c.evaluated for c in request.candidates], request.plan.steering_key)
        with self._lock:
            self._active.remove(request)
            idle = not self._active and not self._waiting
        if idle:
            self.kv.compact_when_idle()

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._active if r.job.cancelled]:
            self._end_request(request)
            request.job.close()

    # ---- one decode step for everyone ---------------------------------------------------------

    def _steering_group(self) -> List[_Request]:
        """The requests of this step: those under one control vector (a llama.cpp context has
        one, added to every row it decodes), the groups taking turns of STEPS_PER_TURN steps;
        that vector is set on the context. (Setting another vector makes llama.cpp prepare its
        graph again on the next decode, a few ms: a turn of several steps spreads that.)"""
        ready = [r for r in self._active if r.prefilling or (r.live and not self._paused(r))]
        keys = list(dict.fromkeys(r.plan.steering_key for r in ready))
        if not keys:
            return []
        if self._group_key in keys and (self._turn_steps < STEPS_PER_TURN or len(keys) == 1):
            key = self._group_key
        elif self._group_key in keys:
            key = keys[(keys.index(self._group_key) + 1) % len(keys)]
        else:
            key = keys[0]
        self._turn_steps = self._turn_steps + 1 if key == self._group_key else 1
        self._group_key = key
        group = [r for r in ready if r.plan.steering_key == key]
        if key != self._applied_key:
            steering = group[0].plan.steering
            if steering is None:
                self.model.set_control_vector(None)
            else:
                self.model.set_control_vector(steering.directions, steering.first_layer, steering.last_layer)
            self._applied_key = key
        return group

    def _evaluate_image(self, group: List[_Request]) -> None:
        """The first image chunk a prefill of `group` has reached: encoded by the projector and
        decoded as embeddings on the request's first sequence, in decodes of its own (a batch
        holds tokens or embeddings, not both). One image per step, so that the other requests
        go on between images. A failing image fails its request only."""
        for request in group:
            span = request.image_at_head()
            if span is None:
                continue
            try:
                assert self.projector is not None  # plan_completion makes no image span without one
                embeddings = self.projector.encode(span.chunk)
                self.images_encoded += 1
                last = span.end == len(request.plan.prompt_tokens)
                row = self.model.decode_embeddings(embeddings, span.start, request.candidates[0].seq_id, last,
                                                   span.chunk.non_causal)
                request.prompt_in_cache = span.end
                self.prompt_tokens_evaluated += span.chunk.positions
                if last:
                    self._start_candidates(request, row)
            except Exception as error:
                self._end_request(request)
                request.job.close(error)
            return

    def _next_batch(self, group: List[_Request]) -> _Batch:
        """A decode entry per live candidate of `group` (the requests under one control vector,
        `_steering_group`), then their prompt chunks (up to the next image) while the batch has
        room."""
        batch = _Batch()
        # a request of the group that is not prefilling is live and not paused (_steering_group)
        batch.decoding = [(r, c) for r in group if not r.prefilling for c in r.live]
        spare_cells = self.kv.free_cells()  # rejected drafts beside other sequences are retired
        # No drafts beside a prompt chunk: they could tip the batch into llama.cpp's kernels for
        # large batches (over an f16 cache, attention in tiles from 64 rows on), which round
        # otherwise for every row. Over bf16 this may be needless; it was not measured.
        drafting = not any(r.prefilling for r in group)
        for index, (request, candidate) in enumerate(batch.decoding):
            # rows before this candidate's: those in the batch, and a next token per candidate after it
            rows_before = len(batch.entries) + len(batch.decoding) - index - 1
            candidate.drafts = self._drafts(request, candidate, rows_before, spare_cells) if drafting else []
            spare_cells -= len(candidate.drafts)
            position = candidate.next_position
            batch.entries.append(BatchEntry(candidate.next_token, position, candidate.seq_id, True))
            batch.entries += [BatchEntry(t, position + 1 + i, candidate.seq_id, True)
                              for i, t in enumerate(candidate.drafts)]
        room = self.model.batch_size - len(batch.entries)
        for request in group:
            if room <= 0:
                break
            if not request.prefilling:
                continue
            prompt, scores = request.plan.prompt_tokens, request.plan.scores_prompt
            first = request.prompt_in_cache
            count = min(room, request.text_until() - first, ECHO_BATCH if scores else room)
            if count <= 0:  # at an image: `_evaluate_image` takes it
                continue
            primary = request.candidates[0].seq_id
            for p in range(first, first + count):
                batch.entries.append(BatchEntry(prompt[p], p, primary, scores or p == len(prompt) - 1))
            batch.prefills.append((request, first, count))
            room -= count
        return batch

    def _drafts(self, request: _Request, candidate: _Candidate, rows_before: int, spare_cells: int) -> List[int]:
        """Tokens to verify after the candidate's next one: what followed the best-aligned earlier
        occurrence of its ending or its pattern (Drafter), as many as DraftPolicy finds gainful
        in a step that holds `rows_before` other rows, within the spare cells and what
        maximum_tokens leaves (each row samples a token)."""
        if candidate.drafter is None:
            return []
        left = request.plan.maximum_tokens - candidate.sequence.generated - 1
        draft = candidate.drafter.draft(min(MAX_DRAFT, left, spare_cells))
        count = self.draft_policy.choose(draft, candidate.drafter, rows_before) if draft.tokens else 0
        candidate.draft = draft
        return draft.tokens[:count]

    def _sample_decoded(self, batch: _Batch, rows: _Rows) -> None:
        """Every decoding candidate samples its next token's row, and then the rows of its drafts
        as long as it samples the drafted token (Sampler.step_drafts)."""
        decoding = batch.decoding
        if not decoding:
            return
        generated = [c.sequence.generated for _, c in decoding]
        n_rows = sum(1 + len(c.drafts) for _, c in decoding)
        sampled = self.sampler.step_drafts([c.sequence for _, c in decoding], [c.drafts for _, c in decoding],
                                           rows.take(n_rows), n_rows)
        alone = len(decoding) == 1 and not batch.prefills
        for (_, candidate), results in zip(decoding, sampled):  # the cells first: a request may end below
            accepted = len(results) - 1  # each sampled token but the last was the next draft
            candidate.evaluated += [candidate.next_token] + candidate.drafts[:accepted]  # in its cells now
            candidate.next_position += 1 + accepted
            candidate.steps += 1
            self.kv.drop_drafts(candidate.seq_id, candidate.next_position, len(candidate.drafts) - accepted, alone)
            if candidate.drafter is not None:
                self.draft_policy.record(candidate.draft, candidate.drafter, len(candidate.drafts), accepted)
        for (request, candidate), results, before in zip(decoding, sampled, generated):
            for count, result in enumerate(results, start=before + 1):
                self._after_sample(request, candidate, result, count)

    def _advance_prompts(self, prefills: List[Tuple[_Request, int, int]], rows: _Rows) -> None:
        """Prompt chunks are in: score them (echo with log_probs), and start the candidates of
        prompts that are complete."""
        for request, first, count in prefills:
            plan = request.plan
            request.prompt_in_cache += count
            self.prompt_tokens_evaluated += count
            if plan.scores_prompt:
                prompt = plan.prompt_tokens
                targets = [prompt[p + 1] for p in range(first, first + count) if p + 1 < len(prompt)]
                request.prompt_scores += self.sampler.score_rows(
                    rows.take(len(targets)), len(targets), targets, plan.log_probs or 0)
            if not request.prefilling:
                self._start_candidates(request, rows.take(1))

    def _start_candidates(self, request: _Request, last_row: int) -> None:
        """The prompt is in: share it with every candidate and sample their first tokens."""
        plan = request.plan
        primary = request.candidates[0].seq_id
        for candidate in request.candidates[1:]:
            self.model.copy_sequence(primary, candidate.seq_id)
        if plan.echo:
            echo = self._prompt_echo(request)
            for candidate in request.candidates:
                self._emit(request, replace(echo, index=candidate.index))
        if plan.maximum_tokens == 0:
            for candidate in request.candidates:
                candidate.done = True
                self._emit(request, SequenceFinished(candidate.index, "maximum_tokens"))
            self._finish(request)
            return
        results = self.sampler.step_shared([c.sequence for c in request.candidates], last_row)
        for candidate, result in zip(request.candidates, results):
            self._after_sample(request, candidate, result, generated=1)

    def _prompt_echo(self, request: _Request) -> PromptEcho:
        vocabulary, prompt = self.model.vocabulary, request.plan.prompt_tokens
        entries = [TokenEntry(vocabulary.piece(prompt[0], raw=True), None, (), prompt[0])]
        for i, token in enumerate(prompt[1:]):
            logprob, top = request.prompt_scores[i] if request.prompt_scores else (None, ())
            entries.append(TokenEntry(vocabulary.piece(token, raw=True), logprob, spelled(vocabulary, top), token))
        text = b"".join(vocabulary.piece(t) for t in prompt)
        raw = b"".join(vocabulary.piece(t, raw=True) for t in prompt)
        return PromptEcho(0, text, raw, tuple(entries))

    def _after_sample(self, request: _Request, candidate: _Candidate, result: StepResult, generated: int) -> None:
        """`result` is the candidate's token number `generated` (or that it has none)."""
        if request.failed or candidate.done:
            return
        if result.status == NO_TOKEN:  # this request's constraints: it fails, the batch goes on
            request.failed = True
            self._end_request(request)
            request.job.close(InvalidRequest(
                "completion_bias_inclusion", "no token is left to generate: completion_bias_inclusion, "
                "completion_bias_exclusion, logit_bias and minimum_tokens together exclude every token at "
                f"step {generated} (an allowed completion that an excluded one starts, "
                "or that ends before minimum_tokens)"))
            return
        plan = request.plan
        reason = _FINISH_REASONS.get(result.status)
        if reason is None and generated >= plan.maximum_tokens:
            reason = "maximum_tokens"
        text, entries = candidate.text.release(result, reason is not None, plan.want_token_entries)
        raw = self.model.vocabulary.piece(result.token, raw=True)
        self._emit(request, TokenSampled(candidate.index, result.token, text, raw, entries))
        if reason:
            candidate.done = True
            self._emit(request, SequenceFinished(candidate.index, reason))
            if not request.live:
                self._finish(request)
        else:
            candidate.next_token = result.token
        if candidate.drafter is not None:
            candidate.drafter.extend(result.token)

    def _emit(self, request: _Request, event: EngineEvent) -> None:
        if request.plan.ranked:
            request.unranked_events.append(event)
        else:
            request.job.outbox.put(event)

    def _finish(self, request: _Request) -> None:
        """Every candidate ended: pass on the best n (best_of) and close the job."""
        if request.plan.ranked:
            order = self.sampler.rank([c.sequence for c in request.candidates])
            rank_of = {index: rank for rank, index in enumerate(order)}
            kept = [e for e in request.unranked_events if rank_of[e.index] < request.plan.n]
            kept.sort(key=lambda e: rank_of[e.index])  # stable: each candidate's events stay in order
            for event in kept:
                request.job.outbox.put(replace(event, index=rank_of[event.index]))
            dropped = [request.candidates[i] for i in order[request.plan.n :]]
            request.job.outbox.put(CandidatesDropped(len(dropped), sum(c.sequence.generated for c in dropped)))
        drafters = [c.drafter for c in request.candidates if c.drafter is not None]
        request.job.outbox.put(Decoded(sum(c.steps for c in request.candidates), sum(d.drafted for d in drafters),
                                       sum(d.accepted for d in drafters)))
        self._end_request(request)
        request.job.close()
