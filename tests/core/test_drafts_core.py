"""Speculation in C (`ec_sample_drafts`): each sequence samples its rows in order with the
reference chain (NumPy) and keeps going while it samples the drafted token, on random configs,
logits and drafts; its state afterwards is that of sampling the same rows one step at a time."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecomplete.sampling import RUNNING, NativeError, Sampler, SamplerConfig, Sequence

from .test_sequence_core import EOS, F32, N_VOCAB, VOCAB, configs, row_for

MAX_DRAFTS = 6


class ReferenceSequence:
    """What a sequence has generated and its penalty counts, by the NumPy reference chain."""

    def __init__(self, config: SamplerConfig):
        self.config = config
        self.generated = []
        self.counts = {}
        for t in config.penalty_context:
            if t not in config.penalty_exceptions:
                self.counts[t] = self.counts.get(t, 0) + 1

    def sample(self, row) -> int:
        token = row_for(row, self.config, self.generated, self.counts)
        if token != EOS:
            self.generated.append(token)
            if self.config.penalize_completion and token not in self.config.penalty_exceptions:
                self.counts[token] = self.counts.get(token, 0) + 1
        return token


def reference_step(reference: ReferenceSequence, rows, drafts):
    """The tokens the acceptance rule keeps: sample row j; go on while it is drafts[j]."""
    sampled = []
    for j, row in enumerate(rows):
        token = reference.sample(row)
        sampled.append(token)
        if token == EOS or j == len(drafts) or token != drafts[j]:
            break
    return sampled


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs=st.lists(configs, min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_drafts_are_kept_while_the_reference_samples_them(configs, seed, data):
    rng = np.random.default_rng(seed)
    sequences = [Sequence(VOCAB, c) for c in configs]
    one_at_a_time = [Sequence(VOCAB, c) for c in configs]  # the same rows, one step each
    references = [ReferenceSequence(c) for c in configs]
    sampler = Sampler(VOCAB, len(configs), max_draft_rows=len(configs) * MAX_DRAFTS)
    single = Sampler(VOCAB, 1)
    live = list(range(len(configs)))
    for _ in range(4):
        if not live:
            break
        drafts, rows = [], []
        for i in live:
            count = data.draw(st.integers(0, MAX_DRAFTS), label="drafts")
            own = rng.normal(0, 2, (count + 1, N_VOCAB)).astype(F32)
            # Drafts that the reference would sample, up to a random point, then a random token:
            # acceptance, rejection and the bonus row all occur.
            twin = ReferenceSequence(configs[i])
            twin.generated, twin.counts = list(references[i].generated), dict(references[i].counts)
            agree = data.draw(st.integers(0, count), label="agreeing drafts")
            draft = [twin.sample(own[j]) for j in range(agree)]
            draft += [int(t) for t in rng.integers(1, N_VOCAB, count - agree)]
            drafts.append(draft)
            rows.append(own)
        logits = np.concatenate(rows)
        raw = [r.copy() for r in rows]
        results = sampler.step_drafts([sequences[i] for i in live], drafts, logits.ctypes.data, len(logits))
        for i, draft, own, sampled in zip(live, drafts, raw, results):
            expected = reference_step(references[i], own, draft)
            assert [r.token for r in sampled] == expected
            assert all(r.status == RUNNING for r in sampled[:-1])
            for j, result in enumerate(sampled):
                alone = own[j : j + 1].copy()
                same = single.step([one_at_a_time[i]], alone.ctypes.data, 1)[0]
                assert (result.token, result.status, result.text_length, result.stable_length) == (
                    same.token, same.status, same.text_length, same.stable_length)
                assert (math.isnan(result.logprob) and math.isnan(same.logprob)) or result.logprob == same.logprob
                assert result.top == same.top
            assert sequences[i].text() == one_at_a_time[i].text()
            assert sequences[i].penalty_counts() == one_at_a_time[i].penalty_counts()
            assert sequences[i].generated == one_at_a_time[i].generated
        live = [i for i, sampled in zip(live, results) if sampled[-1].status == RUNNING]


def test_greedy_keeps_exactly_the_drafts_that_are_the_argmax():
    seq = Sequence(VOCAB, SamplerConfig())
    sampler = Sampler(VOCAB, 1, max_draft_rows=4)
    rows = np.full((5, N_VOCAB), -1.0, dtype=F32)
    for r, token in enumerate([5, 6, 7, 9, 10]):
        rows[r, token] = 3.0
    sampled = sampler.step_drafts([seq], [[5, 6, 8, 9]], rows.ctypes.data, 5)[0]
    assert [r.token for r in sampled] == [5, 6, 7]  # 8 is rejected: row 2 samples 7 instead
    rows = np.full((3, N_VOCAB), -1.0, dtype=F32)
    for r, token in enumerate([2, 3, 4]):
        rows[r, token] = 3.0
    sampled = sampler.step_drafts([seq], [[2, 3]], rows.ctypes.data, 3)[0]
    assert [r.token for r in sampled] == [2, 3, 4]  # every draft kept, and the row after the last


def test_an_ending_token_ends_the_drafts():
    seq = Sequence(VOCAB, SamplerConfig())
    sampler = Sampler(VOCAB, 1, max_draft_rows=3)
    rows = np.full((4, N_VOCAB), -1.0, dtype=F32)
    rows[0, 4], rows[1, EOS], rows[2, 5], rows[3, 6] = 3.0, 3.0, 3.0, 3.0
    sampled = sampler.step_drafts([seq], [[4, EOS, 5]], rows.ctypes.data, 4)[0]
    assert [r.token for r in sampled] == [4, EOS]
    assert sampled[-1].status != RUNNING


def test_bad_drafts_are_refused_without_crashing():
    seq = Sequence(VOCAB, SamplerConfig())
    sampler = Sampler(VOCAB, 2, max_draft_rows=4)
    rows = np.zeros((3, N_VOCAB), dtype=F32)
    with pytest.raises(NativeError, match="outside the vocabulary"):
        sampler.step_drafts([seq], [[N_VOCAB, 2]], rows.ctypes.data, 3)
    with pytest.raises(NativeError, match="rows needed"):
        sampler.step_drafts([seq], [[2, 3]], rows.ctypes.data, 2)
    with pytest.raises(ValueError, match="at most 4"):
        sampler.step_drafts([seq], [[2] * 5], rows.ctypes.data, 3)
    assert seq.generated == 0  # nothing was sampled
