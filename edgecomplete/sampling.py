"""The bridge to the C core (edgecomplete._native): the only Python that calls it.

- `Vocabulary`: every token's visible and raw bytes and flags, built once per model.
- `SamplerConfig`: one candidate's sampling settings, resolved to token ids and bytes.
- `Sequence`: one candidate's state in C (penalty counts, history, text, stop matcher, log-probs).
- `Sampler.step`: one C call that samples every row of a decode step, in place on the logits;
  `Sampler.step_drafts` the same with drafted tokens to verify (speculation).
- `Sampler.score_rows`: log-probs of given tokens under raw rows (echo), `Sampler.rank` (best_of).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence as Seq, Tuple

from ._native import ffi, lib

RUNNING = lib.EC_RUNNING
END_OF_TEXT = lib.EC_END_OF_TEXT
STOP_SEQUENCE = lib.EC_STOP_SEQUENCE
NO_TOKEN = lib.EC_NO_TOKEN  # the sequence's constraints left no token to sample

TOKEN_END_OF_GENERATION = lib.EC_TOKEN_END_OF_GENERATION
TOKEN_SPECIAL = lib.EC_TOKEN_SPECIAL
MAX_LOG_PROBS = lib.EC_MAX_LOG_PROBS
MAX_PENALTY = float(lib.EC_MAX_PENALTY)


class NativeError(RuntimeError):
    """The C core refused a call; the message says why."""


def _check(code: int) -> int:
    if code < 0 and code != lib.EC_NONE:
        raise NativeError(ffi.string(lib.ec_last_error()).decode("utf-8", "replace"))
    return code


def _check_pointer(pointer):
    if pointer == ffi.NULL:
        raise NativeError(ffi.string(lib.ec_last_error()).decode("utf-8", "replace"))
    return pointer


class Vocabulary:
    """Token pieces for the C core: `text` is what a completion shows, `raw` renders specials."""

    def __init__(self, n_vocab: int):
        self.size = n_vocab
        self._handle = ffi.gc(_check_pointer(lib.ec_vocab_new(n_vocab)), lib.ec_vocab_free)

    def set_token(self, token: int, text: bytes, raw: bytes, flags: int) -> None:
        _check(lib.ec_vocab_set_token(self._handle, token, text, len(text), raw, len(raw), flags))

    def piece(self, token: int, raw: bool = False) -> bytes:
        length = ffi.new("int32_t *")
        pointer = _check_pointer(lib.ec_vocab_piece(self._handle, token, int(raw), length))
        return ffi.buffer(pointer, length[0])[:]

    def finalize(self) -> None:
        """Index the pieces (needed by completion-bias constraints); call after the last set_token."""
        _check(lib.ec_vocab_finalize(self._handle))


@dataclass(frozen=True)
class SamplerConfig:
    """One candidate's sampling settings (SPEC.md: sampling and penalties), token ids resolved."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    multiplicative_presence: bool = False
    multiplicative_frequency: bool = False
    penalize_completion: bool = True
    penalty_context: Tuple[int, ...] = ()
    penalty_exceptions: Tuple[int, ...] = ()
    logit_bias: Dict[int, float] = field(default_factory=dict)
    minimum_tokens: int = 0
    sequence_penalty: float = 0.0
    sequence_min_length: int = 2
    multiplicative_sequence: bool = False
    sequence_context: Tuple[int, ...] = ()  # searched for repeats; the completion joins it
    completion_bias_inclusion: Tuple[bytes, ...] = ()
    inclusion_first_token_only: bool = False
    completion_bias_exclusion: Tuple[bytes, ...] = ()
    exclusion_first_token_only: bool = False
    stop_sequences: Tuple[bytes, ...] = ()
    score: bool = False  # track raw log-probs of sampled tokens (best_of ranking)
    log_probs: Optional[int] = None  # alternatives to report per token
    seed: int = 0  # the request's seed + the candidate's index


class Sequence:
    """One candidate being generated: its sampling state lives in C."""

    def __init__(self, vocabulary: Vocabulary, config: SamplerConfig):
        self.vocabulary = vocabulary  # the C sequence points into it
        self.config = config
        keep = []  # cffi arrays must stay alive during ec_sequence_new

        def ints(values):
            keep.append(ffi.new("int32_t[]", list(values)))
            return keep[-1], len(values)

        def strings(values):
            data = ffi.new("char[]", b"".join(values))
            keep.append(data)
            lengths, n = ints([len(v) for v in values])
            return data, lengths, n

        c = ffi.new("ec_sequence_config *")
        c.temperature = config.temperature
        c.top_k = config.top_k
        c.top_p = config.top_p
        c.presence_penalty = config.presence_penalty
        c.frequency_penalty = config.frequency_penalty
        c.multiplicative_presence = config.multiplicative_presence
        c.multiplicative_frequency = config.multiplicative_frequency
        c.penalize_completion = config.penalize_completion
        c.penalty_context, c.n_penalty_context = ints(config.penalty_context)
        c.penalty_exceptions, c.n_penalty_exceptions = ints(config.penalty_exceptions)
        c.bias_tokens, c.n_bias = ints(list(config.logit_bias.keys()))
        keep.append(ffi.new("float[]", list(config.logit_bias.values())))
        c.bias_values = keep[-1]
        c.minimum_tokens = config.minimum_tokens
        c.sequence_penalty = config.sequence_penalty
        c.sequence_min_length = config.sequence_min_length
        c.multiplicative_sequence = config.multiplicative_sequence
        c.sequence_context, c.n_sequence_context = ints(config.sequence_context)
        c.inclusion_bytes, c.inclusion_lengths, c.n_inclusion = strings(config.completion_bias_inclusion)
        c.inclusion_first_token_only = config.inclusion_first_token_only
        c.exclusion_bytes, c.exclusion_lengths, c.n_exclusion = strings(config.completion_bias_exclusion)
        c.exclusion_first_token_only = config.exclusion_first_token_only
        c.stop_bytes, c.stop_lengths, c.n_stops = strings(config.stop_sequences)
        c.score = config.score
        c.log_probs = -1 if config.log_probs is None else config.log_probs
        c.seed = config.seed & 0xFFFFFFFFFFFFFFFF
        self._handle = ffi.gc(_check_pointer(lib.ec_sequence_new(vocabulary._handle, c)), lib.ec_sequence_free)

    def text(self) -> bytes:
        """Visible bytes so far (ending before the stop sequence once one matched)."""
        length = ffi.new("int64_t *")
        pointer = lib.ec_sequence_text(self._handle, length)
        return ffi.buffer(pointer, length[0])[:] if length[0] else b""

    def text_slice(self, start: int, end: int) -> bytes:
        """Visible bytes [start, end) without copying the rest of the text."""
        length = ffi.new("int64_t *")
        pointer = lib.ec_sequence_text(self._handle, length)
        if not 0 <= start <= end <= length[0]:
            raise IndexError(f"text slice [{start}, {end}) outside the {length[0]} visible bytes")
        return ffi.buffer(pointer + start, end - start)[:] if end > start else b""

    def raw(self) -> bytes:
        length = ffi.new("int64_t *")
        pointer = lib.ec_sequence_raw(self._handle, length)
        return ffi.buffer(pointer, length[0])[:] if length[0] else b""

    @property
    def generated(self) -> int:
        return lib.ec_sequence_generated(self._handle)

    @property
    def mean_logprob(self) -> float:
        """Mean raw log-prob per generated token (NaN when not scored)."""
        return lib.ec_sequence_mean_logprob(self._handle)

    def penalty_counts(self) -> Dict[int, int]:
        capacity = self.vocabulary.size
        tokens = ffi.new("int32_t[]", capacity)
        counts = ffi.new("int32_t[]", capacity)
        n = _check(lib.ec_sequence_penalty_counts(self._handle, tokens, counts, capacity))
        return {tokens[i]: counts[i] for i in range(n)}

    def accept(self, token: int) -> "StepResult":
        result = ffi.new("ec_step_result *")
        result.logprob = math.nan
        _check(lib.ec_sequence_accept(self._handle, token, result))
        return StepResult.from_native(result)


@dataclass(frozen=True)
class StepResult:
    token: int
    status: int  # RUNNING, END_OF_TEXT or STOP_SEQUENCE
    text_length: int  # visible bytes so far
    stable_length: int  # visible bytes that no stop sequence can cut any more
    logprob: float = math.nan  # raw log-prob of token (when scored)
    top: Tuple[Tuple[int, float], ...] = ()  # (token, raw log-prob), most likely first

    @staticmethod
    def from_native(r) -> "StepResult":
        top = tuple((r.top_tokens[j], r.top_logprobs[j]) for j in range(r.n_top))
        return StepResult(r.token, r.status, r.text_length, r.stable_length, r.logprob, top)


class Sampler:
    """Samples all rows of a decode step in one C call; owns the scratch buffers."""

    def __init__(self, vocabulary: Vocabulary, max_rows: int, max_draft_rows: int = 0):
        """max_rows: sequences in one step at most; max_draft_rows: drafted rows in one step at
        most (step_drafts)."""
        self.vocabulary = vocabulary
        self._workspace = ffi.gc(_check_pointer(lib.ec_workspace_new(vocabulary.size)), lib.ec_workspace_free)
        self._results = ffi.new("ec_step_result[]", max_rows + max_draft_rows)
        self._handles = ffi.new("ec_sequence *[]", max_rows)
        self._draft_counts = ffi.new("int32_t[]", max_rows)
        self._sampled = ffi.new("int32_t[]", max_rows)
        self._drafts = ffi.new("int32_t[]", max(max_draft_rows, 1))
        self.max_rows = max_rows
        self.max_draft_rows = max_draft_rows

    def _prepare(self, sequences: Seq[Sequence]) -> int:
        n = len(sequences)
        if n > self.max_rows:
            raise ValueError(f"{n} sequences in one step, at most {self.max_rows}")
        for i, sequence in enumerate(sequences):
            self._handles[i] = sequence._handle
        return n

    def step(self, sequences: Seq[Sequence], logits_address: int, n_rows: int) -> List[StepResult]:
        """Row i of the float32 logits at `logits_address` (n_rows x vocabulary size, modified in
        place) belongs to sequences[i]; returns what each sequence sampled."""
        n = self._prepare(sequences)
        logits = ffi.cast("float *", logits_address)
        _check(lib.ec_sample_step(self._workspace, self._handles, n, logits, n_rows,
                                  self.vocabulary.size, self._results))
        return self._collect(n)

    def step_drafts(self, sequences: Seq[Sequence], drafts: Seq[Seq[int]], logits_address: int,
                    n_rows: int) -> List[List[StepResult]]:
        """Speculation: sequences[i] owns 1 + len(drafts[i]) consecutive rows (its next token's,
        then one per drafted token). Each samples its rows in order, exactly as one step at a
        time would, until it samples a token other than the draft at that place or ends;
        returns each sequence's sampled tokens (1 + its accepted drafts, fewer if it ended)."""
        n = self._prepare(sequences)
        if len(drafts) != n:
            raise ValueError(f"{len(drafts)} draft lists for {n} sequences")
        total = sum(len(d) for d in drafts)
        if total > self.max_draft_rows:
            raise ValueError(f"{total} drafted rows in one step, at most {self.max_draft_rows}")
        flat = [token for draft in drafts for token in draft]
        self._drafts[0:total] = flat
        for i, draft in enumerate(drafts):
            self._draft_counts[i] = len(draft)
        _check(lib.ec_sample_drafts(self._workspace, self._handles, n, self._drafts, self._draft_counts,
                                    ffi.cast("float *", logits_address), n_rows, self.vocabulary.size,
                                    self._results, self._sampled))
        sampled, row = [], 0
        for i, draft in enumerate(drafts):
            sampled.append([StepResult.from_native(self._results[row + j]) for j in range(self._sampled[i])])
            row += 1 + len(draft)
        return sampled

    def step_shared(self, sequences: Seq[Sequence], row_address: int) -> List[StepResult]:
        """Every sequence samples from the one logits row at `row_address` (left unmodified):
        the first step of a request, whose candidates all continue the same prompt."""
        n = self._prepare(sequences)
        row = ffi.cast("float *", row_address)
        _check(lib.ec_sample_shared_row(self._workspace, self._handles, n, row, self.vocabulary.size,
                                        self._results))
        return self._collect(n)

    def _collect(self, n: int) -> List[StepResult]:
        return [StepResult.from_native(self._results[i]) for i in range(n)]

    def score_rows(
        self, logits_address: int, n_rows: int, targets: Seq[int], top_n: int
    ) -> List[Tuple[float, Tuple[Tuple[int, float], ...]]]:
        """For each raw logits row: the log-prob of targets[row] and the top_n alternatives."""
        if len(targets) != n_rows:
            raise ValueError(f"{len(targets)} targets for {n_rows} rows")
        logprobs = ffi.new("float[]", max(n_rows, 1))
        tokens = ffi.new("int32_t[]", max(n_rows * top_n, 1))
        values = ffi.new("float[]", max(n_rows * top_n, 1))
        _check(lib.ec_score_rows(ffi.cast("float *", logits_address), n_rows, self.vocabulary.size,
                                 list(targets), top_n, self._workspace, logprobs, tokens, values))
        return [
            (logprobs[r], tuple((tokens[r * top_n + j], values[r * top_n + j])
                                for j in range(top_n) if tokens[r * top_n + j] >= 0))
            for r in range(n_rows)
        ]

    def rank(self, sequences: Seq[Sequence]) -> List[int]:
        """Indices of `sequences` by mean raw log-prob, best first, ties to the lower index."""
        n = self._prepare(sequences)
        order = ffi.new("int32_t[]", max(n, 1))
        _check(lib.ec_rank_sequences(self._handles, n, order))
        return [order[i] for i in range(n)]
