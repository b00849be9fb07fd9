"""KV cells and sequence ids of one model's context: who holds which cells, what a request needs,
which finished prompts are kept for reuse (prefix slots), and when the cache is compacted.

Sequence-id layout of a context serving `max_sequences` candidates at once:

    0 .. max_sequences - 1      the candidates of running requests
    max_sequences               the retired sequence: cells of ended sequences (see `retire`)
    max_sequences + 1 ..        the prefix slots: cells of finished prompts kept for reuse

Everything here runs on the llama thread (admission and the end of requests happen there), so
nothing needs a lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # only called here; validation imports this module while plan.py loads
    from ..plan import GenerationPlan
    from .llama import LlamaModel

PREFIX_SLOTS = 2  # finished sequences whose KV cells are kept for reuse by a later prompt


def sequence_ids(max_sequences: int) -> int:
    """llama.cpp sequence ids a context needs: one per candidate, the retired sequence and the
    prefix slots."""
    return max_sequences + 1 + PREFIX_SLOTS


def cells_needed(prompt_tokens: int, candidates: int, maximum_tokens: int, reused_tokens: int = 0) -> int:
    """New KV cells a request takes: its prompt's (but those reused from a prefix slot), shared by
    its candidates, plus each candidate's generated tokens but the last, which is sampled and
    never evaluated."""
    return prompt_tokens - reused_tokens + candidates * max(maximum_tokens - 1, 0)


def max_new_tokens(prompt_tokens: int, context_length: int, candidates: int) -> int:
    """The largest maximum_tokens that fits: within the cells (`cells_needed` <= context) and
    within the positions (prompt + completion <= context, SPEC.md)."""
    free_cells = context_length - prompt_tokens
    return max(0, min(free_cells // candidates + 1, free_cells))


@dataclass
class PrefixSlot:
    """The cells of `tokens` (positions 0 ..) kept under sequence `seq_id`, computed under the
    control vector `steering_key` names (() for none): only a request under the same vector
    may reuse them."""

    seq_id: int
    tokens: Tuple[int, ...] = ()
    last_used: int = 0
    steering_key: Tuple = ()


@dataclass
class Lease:
    """What an admitted request holds: a sequence id per candidate and its reserved cells; the
    first `reused_tokens` prompt tokens are already in the first candidate's cells."""

    seq_ids: List[int]
    reserved_cells: int
    reused_tokens: int = 0


@dataclass
class KvCells:
    """The cells and sequence ids of one context. Cells of ended sequences are retired, not freed:
    see `retire`."""

    model: "LlamaModel"
    reuse_prefixes: bool
    free_ids: List[int] = field(init=False)
    reserved_cells: int = 0  # by running requests
    retired_cells: int = 0  # upper bound of the retired cells (freed by compaction)
    slots: List[PrefixSlot] = field(init=False)
    clock: int = 0  # orders the prefix slots by last use

    def __post_init__(self):
        max_sequences = self.model.max_sequences
        self.retired_seq_id = max_sequences
        self.free_ids = list(range(max_sequences))
        self.slots = [PrefixSlot(max_sequences + 1 + i) for i in range(PREFIX_SLOTS)]
        # Sliding-window attention layers overwrite cells that left the window, so a kept
        # prefix cannot be trusted on such models.
        self.reuse_prefixes = self.reuse_prefixes and not self.model.has_sliding_window

    # ---- what a request needs ------------------------------------------------------------------

    @property
    def cached_prefix_tokens(self) -> int:
        return sum(len(slot.tokens) for slot in self.slots)

    def free_cells(self) -> int:
        return self.model.context_length - self.reserved_cells - self.retired_cells - self.cached_prefix_tokens

    def reusable_prefix(self, plan: "GenerationPlan") -> Tuple[Optional[PrefixSlot], int]:
        """The prefix slot sharing most leading tokens with the prompt (at most all but its last
        token, whose logits must be computed; not part of an image), when the prompt's logits
        are not needed. An image's positions hold a hash of it (plan.image_token), so the same
        image matches."""
        if not self.reuse_prefixes or plan.scores_prompt:
            return None, 0
        best, best_length = None, 0
        prompt = plan.prompt_tokens
        for slot in self.slots:
            if slot.steering_key != plan.steering_key:
                continue
            length, limit = 0, min(len(slot.tokens), len(prompt) - 1)
            while length < limit and slot.tokens[length] == prompt[length]:
                length += 1
            for span in plan.images:  # an image's cells are reused whole or not at all
                if span.start < length < span.end:
                    length = span.start
            if length > best_length:
                best, best_length = slot, length
        return best, best_length

    def cells_needed(self, plan: "GenerationPlan") -> int:
        _, reused = self.reusable_prefix(plan)
        return cells_needed(len(plan.prompt_tokens), len(plan.samplers), plan.maximum_tokens, reused)

    def fits(self, plan: "GenerationPlan") -> bool:
        return len(plan.samplers) <= len(self.free_ids) and self.cells_needed(plan) <= self.free_cells()

    def make_room(self, plan: "GenerationPlan") -> None:
        """Call only while nothing runs, for a request that does not fit: drop the retired cells
        and, while that is not enough, the prefix slots, least recently used first and the one
        the request reuses last; then compact once."""
        self.retired_cells = 0  # the compaction below frees them
        reused, length = self.reusable_prefix(plan)
        for slot in sorted(self.slots, key=lambda s: (s is reused, s.last_used)):
            if self.cells_needed(plan) <= self.free_cells():
                break
            if slot is reused and len(slot.tokens) > length:  # keep just what is reused
                self.model.truncate_sequence(slot.seq_id, length)
                slot.tokens = slot.tokens[:length]
                if self.cells_needed(plan) <= self.free_cells():
                    break
            slot.tokens = ()
        self.compact()

    # ---- admission and end of a request ---------------------------------------------------------

    def lease(self, plan: "GenerationPlan") -> Lease:
        """Sequence ids and cells for `plan` (which fits); a reusable prefix is shared into the
        first candidate's sequence."""
        slot, reused = self.reusable_prefix(plan)
        lease = Lease([], self.cells_needed(plan))
        self.reserved_cells += lease.reserved_cells
        for _ in plan.samplers:
            seq_id = self.free_ids.pop(0)
            self.model.drop_sequence(seq_id)  # a request never sees KV state left by another
            lease.seq_ids.append(seq_id)
        if slot is not None:
            self.model.copy_sequence(slot.seq_id, lease.seq_ids[0], end=reused)
            self.clock += 1
            slot.last_used = self.clock
            lease.reused_tokens = reused
        return lease

    def end(self, lease: Lease, prompt_in_cache: Sequence[int], generated: Sequence[Sequence[int]],
            steering_key: Tuple = ()) -> None:
        """The request ended: `prompt_in_cache` are its prompt tokens in the cells (evaluated or
        reused), `generated` each candidate's evaluated tokens. Its sequence ids are free again;
        its cells are retired, but those of a single candidate go to a prefix slot first, for
        the next prompt to reuse."""
        new_cells = len(prompt_in_cache) - lease.reused_tokens + sum(len(tokens) for tokens in generated)
        first = lease.seq_ids[0]
        if self.reuse_prefixes and len(lease.seq_ids) == 1 and prompt_in_cache:
            slot = min(self.slots, key=lambda s: (bool(s.tokens), s.last_used))
            self._retire_slot(slot)
            self.model.copy_sequence(first, slot.seq_id)
            slot.tokens = tuple(prompt_in_cache) + tuple(generated[0])
            slot.steering_key = steering_key
            self.clock += 1
            slot.last_used = self.clock
            new_cells = 0  # counted in the slot now
        for seq_id in lease.seq_ids:
            self.retire(seq_id)
        self.free_ids.extend(lease.seq_ids)
        self.reserved_cells -= lease.reserved_cells
        self.retired_cells += max(new_cells, 0)

    # ---- retirement and compaction --------------------------------------------------------------

    def retire(self, seq_id: int) -> None:
        """Free the id `seq_id` but keep its cells occupied (owned by the retired sequence).

        llama.cpp places new tokens in the first free cells it finds, also before cells a
        sequence already holds; attention then adds that sequence's cells up in another order,
        and the logits drift (by up to about 1 here, with flash attention over an f16 cache).
        So cells are never freed one by one: they are retired, and `compact` starts over.
        Every sequence's cells then stay in position order, and a request computes exactly what
        it would alone, whatever ran before or beside it.
        """
        self.model.copy_sequence(seq_id, self.retired_seq_id)
        self.model.drop_sequence(seq_id)

    def drop_drafts(self, seq_id: int, start: int, count: int, alone: bool) -> None:
        """A candidate's `count` rejected drafts, in its cells at positions from `start` on, go.
        When its step decoded nothing else (`alone`), they are the cache's last cells: they are
        freed, and llama.cpp places the next tokens in them again, in position order. Beside
        other sequences they are retired instead (see `retire`): freed cells between other
        sequences' cells would be taken out of position order."""
        if count <= 0:
            return
        if alone:
            self.model.truncate_sequence(seq_id, start)
        else:
            self.model.move_positions(seq_id, self.retired_seq_id, start)
            self.retired_cells += count

    def _retire_slot(self, slot: PrefixSlot) -> None:
        if slot.tokens:
            self.retire(slot.seq_id)
            self.retired_cells += len(slot.tokens)
            slot.tokens = ()

    def compact_when_idle(self) -> None:
        """Nothing runs or waits: keep the cache small and gapless (over an f16 cache, llama.cpp's
        CPU attention for a single token splits a span of 512 cells or more across threads, and
        its rounding then depends on where cells lie; see `default_kv_cache`)."""
        if self.retired_cells:
            self.compact()

    def compact(self) -> None:
        self.model.compact([slot.seq_id for slot in self.slots if slot.tokens])
        self.retired_cells = 0
