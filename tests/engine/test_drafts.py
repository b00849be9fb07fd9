"""Prompt-lookup drafts and the adaptive draft length (pure Python, no model)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecomplete.engine.drafts import (COUNT_TRUST, COUNT_WEIGHT, LONGEST_MATCH, NGRAM_SIZES, OCCURRENCES,
                                        PRIOR_FURTHER_ROW, PRIOR_SECOND_ROW, SLOT_LEAST_MATCH, SLOT_MARGIN, Draft,
                                        Drafter, DraftPolicy, PromptIndex)


def drafter(prompt, completion=()):
    d = Drafter(PromptIndex(prompt))
    for token in completion:
        d.extend(token)
    return d


def test_drafts_continue_the_best_aligned_earlier_occurrence():
    # 1 2 3 occurs twice before the end; the second is preceded by 0 as the end is: better aligned
    d = drafter([1, 2, 3, 4, 5, 9, 0, 1, 2, 3, 7, 8, 6, 0, 1, 2, 3])
    assert d.draft(2) == Draft([7, 8], 4)
    # what followed reaches the end: the text since then repeats (period 7), and so does the draft
    assert d.draft(10).tokens == [7, 8, 6, 0, 1, 2, 3, 7, 8, 6]
    # equally aligned: as far as they went on alike (below: as far as they part)
    assert drafter([0, 1, 2, 3, 5, 7, 4, 1, 2, 3, 5, 8, 1, 2, 3]).draft(3) == Draft([5], 3)


def test_the_completion_is_searched_too():
    d = drafter([5, 6, 7, 1], completion=[0, 5, 6, 8, 2, 0, 5, 6])
    assert d.draft(2).tokens == [8, 2]  # in the completion: 0 5 6 aligns better than the prompt's 5 6


def test_the_longest_ngram_that_occurred_wins():
    d = drafter([4, 2, 3, 10, 1, 2, 3, 11, 4, 2, 3])
    assert d.draft(1).tokens == [10]  # 4 2 3 was followed by 10; 2 3 alone last by 11


def test_no_draft_without_an_earlier_occurrence():
    assert drafter([1, 2, 3, 4]).draft(5) == Draft([], 0)
    assert drafter([1]).draft(5).tokens == []
    assert drafter([1, 2, 1, 2]).draft(0).tokens == []


def test_drafts_stop_where_equally_aligned_occurrences_part():
    # "0 1 2" twice, each time after "9": equally aligned; one went on 3 4 5, the other 3 7 5
    d = drafter([9, 0, 1, 2, 3, 4, 5, 8, 9, 0, 1, 2, 3, 7, 5, 6, 9, 0, 1, 2])
    assert d.draft(5) == Draft([3], 4)
    # parting at once: no draft (a list's number, a record's value)
    assert drafter([9, 0, 1, 2, 4, 8, 9, 0, 1, 2, 5, 6, 9, 0, 1, 2]).draft(3) == Draft([], 4)


def test_a_pattern_with_a_slot_is_drafted_past_the_slot():
    """`10. Emmy Noether` `11. Emmy Noether` `12. Emmy Noether`: after `1 3` the pair is new, but
    the tokens before the 3 align with two earlier lines; what followed the slot there follows
    it here."""
    line = lambda digit: [1, digit, 30, 40, 41, 42, 7]  # "1 <digit> . Em my Noether ⏎"
    d = drafter([5, 6] + line(0) + line(1) + line(2) + [1, 3])
    assert d.draft(6) == Draft([30, 40, 41, 42, 7, 1], 6, slot=True)  # aligned back to the digit before
    # the same ending after one passage only: where it parted from the prompt is no slot
    single = drafter([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], completion=[5, 6, 7, 8, 9, 10, 99])
    assert single.draft(4) == Draft([], 0)


def test_a_slot_lookup_compares_the_latest_occurrences_before_the_present():
    """A slot lookup's key also ends just before the present's last token: that is no earlier
    occurrence, and takes no place among the OCCURRENCES compared."""
    context, key = [20, 21, 22, 23, 24], [1, 2, 3]
    tokens = context + key + [60, 40, 41]  # the oldest of two well-aligned occurrences
    for i in range(OCCURRENCES - 2):  # poorly aligned ones between them
        tokens += [30 + i] + key + [50]
    tokens += context + key + [61, 40, 41] + context + key + [62]
    expected = Draft([40, 41], 8, slot=True)
    assert drafter(tokens).draft(3) == expected  # all of it in the prompt
    assert drafter(tokens[:-12], completion=tokens[-12:]).draft(3) == expected  # the last two in the completion


def reference_lookup(tokens, count, skip):
    """A plain search over every position: the longest NGRAM_SIZES ending (before the last
    `skip` tokens) that occurred among the latest OCCURRENCES; the best-aligned, latest of
    equals; what followed it (a loop where it reaches the end), cut where an equally aligned
    occurrence went on otherwise; a slot lookup needs two."""
    length = len(tokens)
    here = length - skip
    for n in NGRAM_SIZES:
        if here < n:
            continue
        key = tokens[here - n:here]
        ends = [e for e in range(n, here) if tokens[e - n:e] == key][-OCCURRENCES:]
        if not ends:
            continue

        def aligned(e):
            match = n
            while match < LONGEST_MATCH and e > match and tokens[e - match - 1] == tokens[here - match - 1]:
                match += 1
            return match

        def followed(start, k):
            looped = list(tokens)  # the text from `start` on, repeated: a loop goes on
            while len(looped) < start + k:
                looped.append(looped[len(looped) - (length - start)])
            return looped[start:start + k]

        best = max(ends, key=lambda e: (aligned(e), e))
        equals = [e for e in ends if e != best and aligned(e) == aligned(best)]
        if skip and not equals:
            return None
        drafted = followed(best + skip, count)
        for e in equals:
            other = followed(e + skip, count)
            same = next((i for i, (a, b) in enumerate(zip(drafted, other)) if a != b), len(drafted))
            drafted = drafted[:same]
        return Draft(drafted, aligned(best), bool(skip))
    return None


@st.composite
def patterned(draw):
    """Lines of one template with a slot filled anew each time (numbers, names), ending in the
    slot of a new line or anywhere, split into prompt and completion."""
    template = draw(st.lists(st.integers(0, 9), min_size=2, max_size=9))
    slot = draw(st.integers(0, len(template) - 1))
    tokens = []
    for fill in draw(st.lists(st.integers(0, 12), min_size=1, max_size=6)) + [draw(st.integers(0, 12))]:
        tokens += template[:slot] + [fill] + template[slot + 1:]
    end = draw(st.one_of(st.just(len(tokens) - len(template) + slot + 1), st.integers(0, len(tokens))))
    split = draw(st.integers(0, end))
    return tokens[:split], tokens[split:end]


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(st.tuples(st.lists(st.integers(0, 4), max_size=60), st.lists(st.integers(0, 4), max_size=60)),
                      patterned()),
       count=st.integers(0, 12))
def test_a_draft_is_what_followed_the_best_aligned_occurrence_or_pattern(text, count):
    prompt, completion = text
    d = drafter(prompt, completion)
    tokens = prompt + completion
    expected = Draft([], 0)
    if count:
        plain, slot = reference_lookup(tokens, count, 0), reference_lookup(tokens, count, 1)
        if slot is not None and slot.match >= SLOT_LEAST_MATCH and (plain is None or
                                                                   slot.match >= plain.match + SLOT_MARGIN):
            expected = slot
        elif plain is not None:
            expected = plain
    assert d.draft(count) == expected


def test_the_policy_drafts_where_acceptance_pays_and_not_elsewhere():
    policy = DraftPolicy(most_rows=13)
    draft = Draft(list(range(12)), 20)  # a long match: likely to go on
    assert policy.choose(draft, drafter([1]), rows_before=0) >= 4
    assert policy.choose(Draft(list(range(12)), 2), drafter([1]), rows_before=0) == 0  # a bare bigram
    assert policy.choose(draft, drafter([1]), rows_before=12) == 0  # no rows left in the step
    assert policy.choose(Draft([7], 20), drafter([1]), rows_before=0) <= 1


def test_the_policy_learns_acceptance_and_cost():
    policy = DraftPolicy(most_rows=13)
    candidate = drafter([1])
    draft = Draft(list(range(12)), 20)
    before = policy.acceptance(draft, candidate)
    for _ in range(30):  # this candidate's drafts are rejected at once
        policy.record(draft, candidate, 6, 0)
    assert policy.acceptance(draft, candidate) < before / 3
    assert policy.choose(draft, candidate, rows_before=0) == 0
    assert (candidate.drafted, candidate.accepted) == (180, 0)
    fresh = drafter([1])  # the bucket learned it too, for every candidate
    assert policy.acceptance(draft, fresh) < before
    # slot drafts are a bucket of their own: a fresh candidate's slot drafts start from the prior
    slot = Draft(list(range(12)), 20, slot=True)
    assert policy.acceptance(slot, drafter([1])) == pytest.approx(before)
    # decoding many rows turns out cheap here: longer drafts pay
    policy = DraftPolicy(most_rows=13)
    for rows in range(1, 14):
        policy.record_decode(rows, 0.010 + 0.001 * (rows - 1))
    assert policy.cost(13) < 2.3
    assert policy.choose(Draft(list(range(12)), 3), drafter([1]), rows_before=0) > 0


def test_a_candidates_record_in_a_bucket_outweighs_what_the_engine_learned_there():
    """A quotation taught the engine that bigram drafts are kept; a free story after it has its
    bigram drafts rejected. Its own record there decides after a few, while its long matches
    are still drafted (and a fresh candidate's bigrams too)."""
    policy = DraftPolicy(most_rows=16, seconds={1: 0.005, 2: 0.006, 4: 0.008, 8: 0.013, 16: 0.023})  # smollm2, AMX
    bigram, long = Draft(list(range(12)), 2), Draft(list(range(12)), 20)
    quoting = drafter([1])
    for _ in range(20):
        policy.record(bigram, quoting, 4, 4)
        policy.record(long, quoting, 15, 15)
    story = drafter([1])
    assert policy.acceptance(bigram, story) > 0.8
    for _ in range(3):
        policy.choose(bigram, story, rows_before=0)  # a step each
        policy.record(bigram, story, 1, 0)
    assert policy.acceptance(bigram, story) < 0.35
    assert policy.choose(bigram, story, rows_before=0) <= 1
    assert policy.choose(long, story, rows_before=0) >= 4
    assert policy.choose(bigram, drafter([1]), rows_before=0) >= 2


def test_the_engines_buckets_weigh_its_latest_drafts():
    """Fifty drafts kept, then twenty rejected at once: a fresh candidate's estimate follows the
    latest (a task that repeats its context, then one that does not)."""
    policy = DraftPolicy(most_rows=16)
    bigram = Draft(list(range(12)), 2)
    for _ in range(50):
        policy.record(bigram, drafter([1]), 4, 4)
    assert policy.acceptance(bigram, drafter([1])) > 0.85
    for _ in range(20):
        policy.record(bigram, drafter([1]), 4, 0)
    assert policy.acceptance(bigram, drafter([1])) < 0.5


def test_costs_between_measured_row_counts_are_interpolated():
    """Counts not timed (by the load-time probe, which times the counts it tries, or since) are
    on the line through the nearest timed ones; counts beyond the last go on by the prior's
    increments."""
    policy = DraftPolicy(most_rows=16, seconds={1: 0.010, 16: 0.040})
    assert policy.cost(1) == 1.0 and policy.cost(16) == pytest.approx(4.0)
    assert policy.cost(6) == pytest.approx(1 + 3.0 * 5 / 15)
    for _ in range(COUNT_WEIGHT):  # timed, again and again: it counts as measured, and splits the line
        policy.record_decode(8, 0.020)
    line = 1 + 3.0 * 7 / 15  # what 1 and 16 rows say of 8, weighed as COUNT_TRUST decodes
    eight = (COUNT_WEIGHT * 2.0 + COUNT_TRUST * line) / (COUNT_WEIGHT + COUNT_TRUST)
    assert policy.cost(8) == pytest.approx(eight)
    assert policy.cost(12) == pytest.approx(eight + (4.0 - eight) * 4 / 8)
    assert policy.cost(4) == pytest.approx(1 + (eight - 1) * 3 / 7)
    beyond = DraftPolicy(most_rows=16, seconds={1: 0.010, 4: 0.025})
    assert beyond.cost(6) == pytest.approx(2.5 + 2 * PRIOR_FURTHER_ROW)
    assert DraftPolicy(most_rows=16).cost(5) == pytest.approx(1 + PRIOR_SECOND_ROW + 3 * PRIOR_FURTHER_ROW)


def test_costs_are_relative_to_one_rows_time_when_measured():
    """The machine's speed drifts (a VM's neighbours): a count timed before one row got faster
    keeps its cost in decodes of one row, and is not priced out (a count not drafted is not timed
    again). Kept in seconds, as before, 16 rows would cost 8 decodes of one row here, not 4."""
    policy = DraftPolicy(most_rows=16, seconds={1: 0.010, 16: 0.040})
    for _ in range(100):
        policy.record_decode(1, 0.005)  # one row now takes half the time
    assert policy.cost(16) == pytest.approx(4.0)
    policy.record_decode(16, 0.020)  # and so do 16 rows
    assert policy.cost(16) == pytest.approx(4.0, rel=1e-3)


def test_one_slow_decode_does_not_price_a_count_out():
    """A count timed once, slowly (a new graph, a busy neighbour), is weighed against what the
    counts around it say; timed again and again, its own measurement wins."""
    policy = DraftPolicy(most_rows=16, seconds={1: 0.010, 16: 0.040})
    line = 1 + 3.0 / 15  # 2 rows, between 1 and 16
    policy.record_decode(2, 0.030)  # 3 decodes of one row's worth, once
    blended = (3.0 + COUNT_TRUST * line) / (1 + COUNT_TRUST)
    assert policy.cost(2) == pytest.approx(blended)
    assert policy.cost(9) == pytest.approx(blended + (4.0 - blended) * 7 / 14)  # the counts above see it so too
    assert policy.choose(Draft(list(range(12)), 20), drafter([1]), rows_before=0) > 0
    for _ in range(50):
        policy.record_decode(2, 0.030)
    assert policy.cost(2) == pytest.approx((COUNT_WEIGHT * 3.0 + COUNT_TRUST * line) / (COUNT_WEIGHT + COUNT_TRUST))
