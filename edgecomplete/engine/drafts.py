"""Drafts for speculative decoding, taken from the request's own tokens (prompt lookup), and how
many of them are worth verifying.

Text that repeats its context (a rewrite, an extraction, code that follows a pattern, an answer
that quotes) continues the way it went where its latest tokens occurred before. A candidate's
`Drafter` looks up its last NGRAM_SIZES tokens (the longest n-gram that occurred) in the prompt
and its completion so far, takes the occurrence that matches furthest back (the best-aligned
one, the latest of equals) and proposes the tokens that followed it, up to where the equally
well aligned occurrences part (where a list's number or a record's value goes, say). Text that
repeats a pattern with a slot in it (`12. Emmy Noether` after `11. Emmy Noether`) has a token
no earlier occurrence shares, the slot's, after which a lookup of the latest tokens finds
nothing or little: there the Drafter looks up the tokens before the last one as well, and where
the pattern occurred at least twice, aligned further back than the plain lookup, it drafts what
followed the slot there (a slot draft). The engine decodes the draft with the candidate's next
token in one batch and the C sampler keeps those the candidate samples itself
(`Sampler.step_drafts`).

Verifying is not free: on a CPU a decode of n rows costs nearly n times the arithmetic of one
(smollm2-135m on 2 cores: 2 rows about 1.3x one row with the patched AMX build, 1.8x without
AMX; each further row about 0.3x to 0.5x). `DraftPolicy` drafts only where it pays: it estimates
the chance that a drafted token is accepted, from how long the match is (a long repeated stretch
is likely to go on), whether it is a slot draft, and from how the candidate's own drafts fared
(all of them, and those in its match-length bucket), learns the cost of a decode of n rows from the
engine's own decodes, and drafts the number of tokens with the largest expected gain, or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

NGRAM_SIZES = (3, 2)  # the longest match first: longer contexts predict better
MAX_DRAFT = 15  # drafted tokens per candidate and step at most (16 rows: 7.6 decodes of one row, smollm2)
LONGEST_MATCH = 32  # a match is measured back this far at most
OCCURRENCES = 16  # the latest occurrences of an n-gram that are compared
# A slot draft is taken where its pattern aligns at least this far back (tokens before the slot;
# a shorter one is a common phrase, not a pattern) and this much further than the plain lookup.
SLOT_LEAST_MATCH, SLOT_MARGIN = 5, 3

# Acceptance per drafted token before anything is measured, by match length (tokens matched
# before the draft): a guess the measurements replace.
MATCH_BUCKETS = (2, 3, 4, 6, 10, 18)  # lower bounds
PRIOR_ACCEPTANCE = (0.35, 0.5, 0.6, 0.7, 0.8, 0.9)
PRIOR_WEIGHT = 8.0  # in drafted tokens
# Per draft recorded in a bucket: its older outcomes fade fast, as the text and the task change
# (a bucket that learned from a quotation must not keep a free story drafting; 0.995 did).
MEMORY = 0.9
CANDIDATE_MEMORY = 0.97  # per step: a candidate's recent drafts say most about its next ones
BUCKET_WEIGHT = 2.0  # in drafted tokens: the candidate's estimate against its own record in the bucket
# (which its overall record sums with the other buckets': the bucket's say more about the next one)
# Cost of a decode of n rows relative to one, before measurements (smollm2 on 2 cores).
PRIOR_SECOND_ROW, PRIOR_FURTHER_ROW = 0.86, 0.5
COST_MEMORY = 0.9  # per decode of that many rows: the moving average of its cost
COUNT_WEIGHT = 10  # a count's measured cost stands for this many decodes at most
COUNT_TRUST = 2  # and what the counts around it say for this many


Ends = Dict[Tuple[int, ...], List[int]]  # n-gram → positions after its occurrences (the tokens that followed)


class PromptIndex:
    """Where the n-grams of a prompt occurred. Built once per request, shared by its candidates."""

    def __init__(self, prompt: Sequence[int]):
        self.tokens = list(prompt)
        self.ends: Ends = {}
        for end in range(1, len(self.tokens)):  # the last prompt token is followed by the completion
            _register(self.ends, self.tokens, end)


def _register(ends: Ends, tokens: Sequence[int], end: int) -> None:
    """tokens[end] followed the n-grams ending just before it."""
    for n in NGRAM_SIZES:
        if end >= n:
            ends.setdefault(tuple(tokens[end - n:end]), []).append(end)


@dataclass(frozen=True)
class Draft:
    tokens: List[int]
    match: int  # tokens before the draft that equal those before the candidate's next one (slot draft: before the slot)
    slot: bool = False  # the candidate's last token is skipped: it filled a slot of a repeated pattern


class Drafter:
    """One candidate's lookup over its prompt and its completion so far, and its record."""

    def __init__(self, prompt: PromptIndex):
        self.prompt = prompt
        self.tokens: List[int] = list(prompt.tokens)  # prompt + completion
        self.ends: Ends = {}  # n-grams followed by a completion token
        self.drafted = 0
        self.accepted = 0
        # Its own outcomes per DraftPolicy bucket, fading: [drafted tokens that were decided, of
        # those accepted]; `tried` and `kept` are their sums.
        self.by_bucket: Dict[int, List[float]] = {}

    def extend(self, token: int) -> None:
        """The candidate sampled `token`."""
        self.tokens.append(token)
        _register(self.ends, self.tokens, len(self.tokens) - 1)

    def draft(self, count: int) -> Draft:
        """Up to `count` tokens that followed the best-aligned earlier occurrence of the current
        ending, or a slot draft where that aligns clearly better (see the module)."""
        if count <= 0:
            return Draft([], 0)
        plain = self._lookup(count, skip=0)
        if plain is not None and plain.match + SLOT_MARGIN > LONGEST_MATCH:
            return plain  # no slot draft could align so much further
        slot = self._lookup(count, skip=1)
        if slot is not None and slot.match >= max(SLOT_LEAST_MATCH, plain.match + SLOT_MARGIN if plain else 0):
            return slot
        return plain or Draft([], 0)

    def _lookup(self, count: int, skip: int) -> Optional[Draft]:
        """What followed the best-aligned earlier occurrence of the NGRAM_SIZES tokens that end
        `skip` tokens before the present (the longest n-gram that occurred among its latest
        OCCURRENCES), that many tokens on, cut where equally aligned occurrences went on
        otherwise. A slot lookup (skip 1) needs two equally aligned ones (a pattern, not one
        passage). None where nothing occurred."""
        tokens, length = self.tokens, len(self.tokens)
        here = length - skip  # the ending looked up ends before tokens[here]
        for n in NGRAM_SIZES:
            if here < n:
                continue
            key = tuple(tokens[here - n:here])
            ends = _latest_before(self.ends.get(key, []), here, OCCURRENCES)
            if len(ends) < OCCURRENCES:
                ends = _latest_before(self.prompt.ends.get(key, []), here, OCCURRENCES - len(ends)) + ends
            best, best_match, equals = -1, 0, []
            for end in reversed(ends):
                match = n
                while match < LONGEST_MATCH and end > match and tokens[end - match - 1] == tokens[here - match - 1]:
                    match += 1
                if match > best_match:
                    best, best_match, equals = end, match, []
                elif match == best_match:
                    equals.append(end)
            if best < 0:
                continue
            if skip and not equals:
                return None
            drafted = self._followed(best + skip, count)
            for end in equals:
                if not drafted:
                    break
                other = self._followed(end + skip, len(drafted))
                same = 0
                while same < len(drafted) and other[same] == drafted[same]:
                    same += 1
                drafted = drafted[:same]
            return Draft(drafted, best_match, bool(skip))
        return None

    def _followed(self, start: int, count: int) -> List[int]:
        """`count` tokens from tokens[start] on; where they reach the present, the text from
        `start` on repeats (a loop), and so do they."""
        tokens, length = self.tokens, len(self.tokens)
        drafted = tokens[start:min(start + count, length)]
        period = length - start
        while len(drafted) < count:
            drafted.append(drafted[len(drafted) - period])
        return drafted

    def record(self, drafted: int, accepted: int, bucket: int) -> None:
        """A step verified `drafted` tokens of a draft in DraftPolicy's `bucket` and the candidate
        sampled the first `accepted`."""
        self.drafted += drafted
        self.accepted += accepted
        own = self.by_bucket.setdefault(bucket, [0.0, 0.0])
        own[0] += accepted + (accepted < drafted)  # the tokens after the first rejection tell nothing
        own[1] += accepted

    @property
    def tried(self) -> float:
        return sum(own[0] for own in self.by_bucket.values())

    @property
    def kept(self) -> float:
        return sum(own[1] for own in self.by_bucket.values())

    def fade(self) -> None:
        """A step: its record fades (a candidate that stopped drafting gets to try again later)."""
        for own in self.by_bucket.values():
            own[0] *= CANDIDATE_MEMORY
            own[1] *= CANDIDATE_MEMORY


def _latest_before(ends: List[int], here: int, most: int) -> List[int]:
    """The latest `most` of `ends` (ascending) before `here`: a slot lookup's key also ends just
    before the present's last token, which is no earlier occurrence."""
    stop = len(ends)
    while stop and ends[stop - 1] >= here:
        stop -= 1
    return ends[max(0, stop - most):stop]


def _bucket(draft: Draft) -> int:
    """Plain drafts by match length, then slot drafts by theirs: the slot's next filling is a
    guess of its own."""
    b = max(i for i, lower in enumerate(MATCH_BUCKETS) if draft.match >= lower or i == 0)
    return b + len(MATCH_BUCKETS) * draft.slot


@dataclass
class DraftPolicy:
    """How many drafted tokens to verify: the count with the largest expected gain in time.

    A draft of k tokens whose tokens are each accepted with chance p (given the ones before)
    saves p + p^2 + ... + p^k decode steps on average, and makes this step cost what k more rows
    cost. Both are estimated here: p per match-length bucket over the engine's latest drafts,
    refined by the candidate's own record, overall and in the bucket; the cost per row count
    from the engine's decodes, each relative to one row's time then (seeded by its load-time
    probe, between measured counts interpolated).

    (Weighing the added cost by the engine's present rate instead, tokens per unit of time,
    Dinkelbach's rule for the best ratio, drafted less and measured 0.95-1.04x of this rule,
    slower on 5 of 7 bench tasks: a stretch of accepted drafts tends to go on, more than p^k
    says.)"""

    most_rows: int  # rows a step may hold (LlamaModel.rows_exact_in_batch)
    seconds: Dict[int, float] = field(default_factory=dict)  # the load-time probe: rows -> seconds a decode took
    tried: List[float] = field(default_factory=lambda: [0.0] * 2 * len(MATCH_BUCKETS))  # plain, then slot
    kept: List[float] = field(default_factory=lambda: [0.0] * 2 * len(MATCH_BUCKETS))

    def __post_init__(self) -> None:
        self.one_row = self.seconds.get(1, 0.0)  # a decode of one row (moving average), seconds
        # rows -> [a decode of that many rows in decodes of one row at the time (moving average),
        #          the decodes it stands for (at most COUNT_WEIGHT)]
        self.ratios: Dict[int, List[float]] = {}
        for rows, seconds in self.seconds.items():
            if rows > 1 and self.one_row:
                self.ratios[rows] = [seconds / self.one_row, 1.0]
        self._costs: Optional[Dict[int, float]] = None  # cost() of 2..most_rows rows, till ratios change

    def acceptance(self, draft: Draft, drafter: Drafter) -> float:
        """The chance that a drafted token is accepted: the bucket's, refined by the candidate's
        record (all its drafts: a text that repeats its context goes on doing so), and that by
        the candidate's record in the bucket (a free story's bigram drafts fail where its long
        matches would not)."""
        b = _bucket(draft)
        prior = PRIOR_ACCEPTANCE[b % len(MATCH_BUCKETS)]
        bucket = (self.kept[b] + PRIOR_WEIGHT * prior) / (self.tried[b] + PRIOR_WEIGHT)
        candidate = (drafter.kept + PRIOR_WEIGHT * bucket) / (drafter.tried + PRIOR_WEIGHT)
        tried, kept = drafter.by_bucket.get(b, (0.0, 0.0))
        return (kept + BUCKET_WEIGHT * candidate) / (tried + BUCKET_WEIGHT)

    def cost(self, rows: int) -> float:
        """A decode of `rows` rows, in decodes of one row: as measured where this many rows were
        (weighed against the counts around it while timed only a few times), else on the
        straight line between the nearest measured counts (below the least, from one row: an
        optimistic guess, which drafting then measures), else beyond them (or without a
        measurement) by the prior's increments."""
        if rows <= 1:
            return float(rows)
        if self._costs is None:  # priced once per change of the measurements, not per draft
            self._costs = {n: self._price(n) for n in range(2, self.most_rows + 1)}
        return self._costs[rows] if rows in self._costs else self._price(rows)

    def _price(self, rows: int) -> float:
        if rows in self.ratios:
            # Weighed against the line through the measured counts around it: one slow decode (a
            # new graph, a busy neighbour) would otherwise price the count out for good, as a
            # count not drafted is not timed again. The largest count measured stands alone.
            ratio, weight = self.ratios[rows]
            line = self._line(rows, lambda n: self.ratios[n][0] if n > 1 else 1.0)
            return ratio if line is None else (weight * ratio + COUNT_TRUST * line) / (weight + COUNT_TRUST)
        line = self._line(rows, lambda n: self._price(n) if n > 1 else 1.0)
        if line is not None:
            return line
        below, _ = self._nearest(rows)
        return (self._price(below) if below > 1 else 1.0) + _prior_cost(rows) - _prior_cost(below)

    def _nearest(self, rows: int) -> Tuple[int, int]:
        """The nearest measured counts below `rows` (1, one row, if none) and above it (0 if none)."""
        return (max((n for n in self.ratios if n < rows), default=1),
                min((n for n in self.ratios if n > rows), default=0))

    def _line(self, rows: int, value: Callable[[int], float]) -> Optional[float]:
        """`value` at `rows` on the straight line between the nearest measured counts below (or
        one row) and above it; None where no count above was measured."""
        below, above = self._nearest(rows)
        if not above:
            return None
        low = value(below)
        return low + (value(above) - low) * (rows - below) / (above - below)

    def choose(self, draft: Draft, drafter: Drafter, rows_before: int) -> int:
        """Tokens of `draft` to verify in a step that holds `rows_before` rows before the
        candidate's next token: the most gainful count, 0 when none gains."""
        most = min(len(draft.tokens), self.most_rows - rows_before - 1)
        if most <= 0:
            return 0
        p = self.acceptance(draft, drafter)
        drafter.fade()
        base = self.cost(rows_before + 1)
        best, best_gain, saved, chance = 0, 0.0, 0.0, 1.0
        for k in range(1, most + 1):
            chance *= p
            saved += chance  # expected accepted tokens, each a decode of one row saved
            gain = saved - (self.cost(rows_before + 1 + k) - base)
            if gain > best_gain:
                best, best_gain = k, gain
        return best

    def record(self, draft: Draft, drafter: Drafter, drafted: int, accepted: int) -> None:
        """The first `drafted` tokens of `draft` were verified and the first `accepted` kept."""
        if drafted == 0:
            return
        b = _bucket(draft)
        drafter.record(drafted, accepted, b)
        self.tried[b] = self.tried[b] * MEMORY + accepted + (accepted < drafted)
        self.kept[b] = self.kept[b] * MEMORY + accepted

    def record_decode(self, rows: int, seconds: float) -> None:
        """A decode of `rows` rows (no prompt chunks) took `seconds`. Kept relative to one row's
        time then: the machine's speed drifts (a VM's neighbours, the clock), and a count timed
        minutes ago in seconds would look dear or cheap against one row's time now, and, when
        dear, would not be drafted, and so not timed, again."""
        if rows == 1:
            self.one_row = seconds if not self.one_row else COST_MEMORY * self.one_row + (1 - COST_MEMORY) * seconds
        elif 1 < rows <= self.most_rows and self.one_row:
            ratio, (previous, weight) = seconds / self.one_row, self.ratios.get(rows, (0.0, 0.0))
            if weight:
                ratio = COST_MEMORY * previous + (1 - COST_MEMORY) * ratio
            self.ratios[rows] = [ratio, min(weight + 1, COUNT_WEIGHT)]
            self._costs = None


def _prior_cost(rows: int) -> float:
    return float(rows) if rows <= 1 else 1 + PRIOR_SECOND_ROW + PRIOR_FURTHER_ROW * (rows - 2)
