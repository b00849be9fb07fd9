"""The C sampling stages against the NumPy reference (tests/reference.py), on many random inputs."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from edgecomplete._native import ffi, lib

from . import reference

F32 = np.float32
MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def f32(x: float) -> float:
    """What a C float parameter receives."""
    return float(F32(x))


logit_values = st.one_of(
    st.floats(-30, 30, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 2.5]),  # ties
    st.just(-math.inf),  # masked tokens
)


@st.composite
def logit_vectors(draw, min_size=1, max_size=200):
    n = draw(st.integers(min_size, max_size))
    values = draw(arrays(F32, n, elements=logit_values))
    assume(np.any(values > -np.inf))
    return values


temperatures = st.one_of(st.just(0.0), st.floats(0.05, 5.0), st.sampled_from([1.0, 1e-3, 1e-38]))
top_ks = st.integers(0, 260)
top_ps = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
uniforms = st.floats(0.0, 1.0, exclude_max=True)


class Workspace:
    def __init__(self, n_vocab):
        self.handle = ffi.gc(lib.ec_workspace_new(n_vocab), lib.ec_workspace_free)


def c_filter(logits, top_k, top_p):
    ws = Workspace(len(logits))
    kept = ffi.new("int32_t[]", len(logits))
    n = lib.ec_filter(ffi.from_buffer("float[]", logits), len(logits), top_k, top_p, ws.handle, kept)
    assert n >= 0, ffi.string(lib.ec_last_error())
    return [kept[i] for i in range(n)]


def c_sample(logits, temperature, top_k, top_p, u):
    ws = Workspace(len(logits))
    row = logits.astype(F32).copy()
    token = lib.ec_sample_row(ffi.from_buffer("float[]", row), len(row), temperature, top_k, top_p, u, ws.handle)
    assert token >= 0, ffi.string(lib.ec_last_error())
    return token


# ---- stages ----------------------------------------------------------------------------------

@MANY
@given(logits=logit_vectors(), top_k=top_ks, top_p=top_ps, temperature=temperatures)
def test_filter_keeps_exactly_the_reference_set_in_order(logits, top_k, top_p, temperature):
    top_p = f32(top_p)
    scaled = reference.scaled(logits, f32(temperature))
    assume(np.any(scaled > -np.inf))
    assert c_filter(scaled, top_k, top_p) == reference.filter_tokens(scaled, top_k, top_p)


@MANY
@given(logits=logit_vectors(), top_k=top_ks, top_p=top_ps, temperature=temperatures, u=uniforms)
def test_sample_row_draws_the_reference_token_for_the_same_uniform(logits, top_k, top_p, temperature, u):
    temperature, top_p = f32(temperature), f32(top_p)
    if not reference.is_greedy(temperature, top_k, top_p):
        assume(np.any(reference.scaled(logits, temperature) > -np.inf))
    assert c_sample(logits, temperature, top_k, top_p, u) == reference.sample_row(
        logits, temperature, top_k, top_p, u
    )


@MANY
@given(
    logits=logit_vectors(min_size=2),
    data=st.data(),
    presence=st.floats(-2, 2, width=32),
    frequency=st.floats(-2, 2, width=32),
    multiplicative_presence=st.booleans(),
    multiplicative_frequency=st.booleans(),
)
def test_penalties_match_the_reference(
    logits, data, presence, frequency, multiplicative_presence, multiplicative_frequency
):
    assume(not multiplicative_presence or 1 + presence > 0)
    assume(not multiplicative_frequency or 1 + frequency > 0)
    n = len(logits)
    tokens = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    counts = data.draw(st.lists(st.integers(1, 50), min_size=len(tokens), max_size=len(tokens)))
    row = logits.copy()
    rc = lib.ec_apply_penalties(
        ffi.from_buffer("float[]", row), n, tokens, counts, len(tokens),
        presence, frequency, multiplicative_presence, multiplicative_frequency,
    )
    assert rc == lib.EC_OK
    expected = reference.penalties(
        logits, dict(zip(tokens, counts)), presence, frequency, multiplicative_presence, multiplicative_frequency
    )
    np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-5)
    untouched = np.setdiff1d(np.arange(n), tokens)
    assert np.array_equal(row[untouched], logits[untouched])


@MANY
@given(logits=logit_vectors(), data=st.data())
def test_logit_bias_and_masks_touch_only_their_tokens(logits, data):
    n = len(logits)
    tokens = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=10))
    bias = data.draw(st.lists(st.floats(-10, 10, width=32), min_size=len(tokens), max_size=len(tokens)))
    row = logits.copy()
    assert lib.ec_apply_logit_bias(ffi.from_buffer("float[]", row), n, tokens, bias, len(tokens)) == lib.EC_OK
    expected = logits.copy()
    for t, b in zip(tokens, bias):
        expected[t] = F32(expected[t] + F32(b))
    assert np.array_equal(row, expected)
    assert lib.ec_mask_tokens(ffi.from_buffer("float[]", row), n, tokens, len(tokens)) == lib.EC_OK
    assert all(row[t] == -np.inf for t in tokens)


def test_top_k_on_a_large_vocabulary_equals_sorting_it():
    rng = np.random.default_rng(7)
    for _ in range(20):
        logits = rng.normal(0, 3, 262_144).astype(F32)
        logits[rng.integers(0, len(logits), 50)] = logits.max()  # ties at the top
        for top_k in (1, 40, 1000):
            expected = sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:top_k]
            assert c_filter(logits, top_k, 0.0) == expected


def test_top_p_alone_on_a_large_vocabulary_equals_the_reference():
    rng = np.random.default_rng(8)
    for _ in range(10):
        logits = rng.normal(0, 4, 50_000).astype(F32)
        for top_p in (0.1, 0.9, 0.999):
            assert c_filter(logits, 0, f32(top_p)) == reference.filter_tokens(logits, 0, f32(top_p))


# ---- randomness --------------------------------------------------------------------------------

def test_uniform_stream_is_reproducible_and_depends_on_seed_and_step():
    a = [lib.ec_uniform(42, step) for step in range(100)]
    assert a == [lib.ec_uniform(42, step) for step in range(100)]
    assert a != [lib.ec_uniform(43, step) for step in range(100)]
    assert len(set(a)) == 100
    assert all(0 <= x < 1 for x in a)


def test_uniform_stream_is_uniform():
    draws = np.array([lib.ec_uniform(9, step) for step in range(200_000)])
    assert stats.kstest(draws, "uniform").pvalue > 1e-4


@pytest.mark.parametrize(
    "temperature,top_k,top_p",
    [(1.0, 0, 0.0), (0.7, 0, 0.0), (1.3, 5, 0.0), (1.0, 0, 0.8), (0.9, 6, 0.7), (0.0, 4, 0.0)],
)
def test_sampling_frequencies_follow_the_distribution(temperature, top_k, top_p):
    rng = np.random.default_rng(11)
    logits = rng.normal(0, 1.5, 12).astype(F32)
    expected = reference.probabilities(logits, temperature if temperature > 0 else 1.0, top_k, f32(top_p))
    draws = 40_000
    counts = np.zeros(len(logits))
    for step in range(draws):
        counts[c_sample(logits, temperature, top_k, f32(top_p), lib.ec_uniform(5, step))] += 1
    support = expected > 0
    assert counts[~support].sum() == 0, "a token outside top_k/top_p was drawn"
    result = stats.chisquare(counts[support], expected[support] * draws)
    assert result.pvalue > 1e-4, (counts, expected * draws)


# ---- bounds checking -----------------------------------------------------------------------------

def test_bad_sizes_and_indices_are_refused_not_crashed():
    logits = np.zeros(10, dtype=F32)
    row = ffi.from_buffer("float[]", logits)
    ws = Workspace(10)
    assert lib.ec_apply_logit_bias(row, 10, [10], [1.0], 1) == lib.EC_ERR_ARGUMENT
    assert b"outside the vocabulary" in ffi.string(lib.ec_last_error())
    assert lib.ec_apply_logit_bias(row, 10, [-1], [1.0], 1) == lib.EC_ERR_ARGUMENT
    assert lib.ec_mask_tokens(row, 10, ffi.NULL, 3) == lib.EC_ERR_ARGUMENT
    assert lib.ec_apply_penalties(row, 10, [3], [0], 1, 0.5, 0.5, False, False) == lib.EC_ERR_ARGUMENT
    assert lib.ec_apply_penalties(row, 10, [3], [1], 1, -1.5, 0.0, True, False) == lib.EC_ERR_ARGUMENT
    assert lib.ec_apply_temperature(row, 10, 0.0) == lib.EC_ERR_ARGUMENT
    assert lib.ec_apply_temperature(ffi.NULL, 10, 1.0) == lib.EC_ERR_ARGUMENT
    assert lib.ec_filter(row, 10, -1, 0.0, ws.handle, ffi.new("int32_t[]", 10)) == lib.EC_ERR_ARGUMENT
    assert lib.ec_filter(row, 10, 0, 1.5, ws.handle, ffi.new("int32_t[]", 10)) == lib.EC_ERR_ARGUMENT
    assert lib.ec_filter(row, 11, 3, 0.0, ws.handle, ffi.new("int32_t[]", 11)) == lib.EC_ERR_ARGUMENT
    assert lib.ec_sample_row(row, 10, 1.0, 0, 0.0, 1.0, ws.handle) == lib.EC_ERR_ARGUMENT
    assert lib.ec_sample_row(row, 0, 1.0, 0, 0.0, 0.5, ws.handle) == lib.EC_ERR_ARGUMENT
    assert lib.ec_sample_row(row, 10, -1.0, 0, 0.0, 0.5, ws.handle) == lib.EC_ERR_ARGUMENT
    assert lib.ec_workspace_new(0) == ffi.NULL
    masked = np.full(10, -np.inf, dtype=F32)
    assert lib.ec_sample_row(ffi.from_buffer("float[]", masked), 10, 1.0, 0, 0.0, 0.5, ws.handle) == (
        lib.EC_ERR_NO_CANDIDATES
    )
    assert lib.ec_argmax(ffi.from_buffer("float[]", masked), 10) == lib.EC_NONE
