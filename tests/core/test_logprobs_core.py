"""Log-probabilities, sequence penalty, completion-bias constraints and best_of ranking in C,
against the NumPy reference."""

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgecomplete._native import ffi, lib
from edgecomplete.sampling import SamplerConfig, Sampler, Sequence, TOKEN_END_OF_GENERATION, Vocabulary

from . import reference

F32 = np.float32
MANY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
model_like = st.floats(-25, 25, width=32)


def workspace(n):
    return ffi.gc(lib.ec_workspace_new(n), lib.ec_workspace_free)


@MANY
@given(
    logits=st.integers(1, 300).flatmap(lambda n: arrays(F32, n, elements=model_like)),
    top_n=st.integers(0, 20),
    data=st.data(),
)
def test_score_rows_matches_numpy_log_softmax(logits, top_n, data):
    n = len(logits)
    target = data.draw(st.integers(0, n - 1))
    expected = reference.log_softmax(logits)
    out, tokens, values = ffi.new("float[1]"), ffi.new("int32_t[]", max(top_n, 1)), ffi.new("float[]", max(top_n, 1))
    rc = lib.ec_score_rows(ffi.from_buffer("float[]", logits), 1, n, [target], top_n, workspace(n), out, tokens, values)
    assert rc == lib.EC_OK
    assert out[0] == np.float32(out[0]) and abs(out[0] - expected[target]) < 1e-4
    kept = min(top_n, n)
    assert [tokens[j] for j in range(kept)] == reference.top_n(logits, kept)
    for j in range(kept):
        assert abs(values[j] - expected[tokens[j]]) < 1e-4
    for j in range(kept, top_n):
        assert tokens[j] == -1


def test_log_normalizer_on_a_large_vocabulary():
    rng = np.random.default_rng(3)
    for scale in (1, 5, 20):
        logits = rng.normal(0, scale, 262_144).astype(F32)
        expected = reference.log_softmax(logits)
        log_z = lib.ec_log_normalizer(ffi.from_buffer("float[]", logits), len(logits))
        assert abs((float(logits[0]) - log_z) - expected[0]) < 1e-5


@MANY
@given(
    logits=arrays(F32, 30, elements=model_like),
    context=st.lists(st.integers(0, 5), max_size=60),
    key=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    penalty=st.floats(-2, 2, width=32),
    multiplicative=st.booleans(),
)
def test_sequence_penalty_matches_reference(logits, context, key, penalty, multiplicative):
    assume(not multiplicative or 1 + penalty > 0)
    row = logits.copy()
    rc = lib.ec_apply_sequence_penalty(ffi.from_buffer("float[]", row), 30, context, len(context), key, len(key),
                                       penalty, multiplicative, workspace(30))
    assert rc == lib.EC_OK
    assert np.array_equal(row, reference.sequence_penalty(logits, context, key, penalty, multiplicative))


# A small vocabulary whose pieces share prefixes, so constraints have work to do.
PIECES = [b"", b"", b"y", b"ye", b"yes", b"yesterday", b"n", b"no", b"not", b" ", b" y", b" yes", b"e", b"s",
          b"o", b"t", b"a", b"ab", b"\xc3", b"\xa9", b"\xc3\xa9"]
EOG = [0]


def piece_vocabulary():
    vocabulary = Vocabulary(len(PIECES))
    for token, piece in enumerate(PIECES):
        flags = TOKEN_END_OF_GENERATION if token in EOG else 0
        vocabulary.set_token(token, piece, piece or b"<special>", flags)
    vocabulary.finalize()
    return vocabulary


VOCAB = piece_vocabulary()
option_strings = st.lists(st.sampled_from(["yes", "no", "not", " yes", "yesterday", "é", "ab", "sat"]), min_size=1,
                          max_size=4, unique=True)


@MANY
@given(options=option_strings, inclusion=st.booleans(), first=st.booleans(), data=st.data())
def test_completion_bias_matches_reference(options, inclusion, first, data):
    encoded = [o.encode() for o in options]
    option = data.draw(st.sampled_from(encoded))
    generated = option[: data.draw(st.integers(0, len(option)))] if not first else b""
    logits = np.random.default_rng(len(generated)).normal(0, 1, len(PIECES)).astype(F32)
    row = logits.copy()
    rc = lib.ec_apply_completion_bias(ffi.from_buffer("float[]", row), VOCAB._handle, generated, len(generated),
                                      b"".join(encoded), [len(o) for o in encoded], len(encoded), inclusion, first,
                                      workspace(len(PIECES)))
    assert rc == lib.EC_OK, ffi.string(lib.ec_last_error())
    expected = reference.completion_bias(logits, PIECES, EOG, generated, encoded, inclusion, first)
    assert np.array_equal(row, expected)


def test_inclusion_generates_only_an_option_and_ends_on_it():
    sampler = Sampler(VOCAB, 1)
    for seed in range(40):
        seq = Sequence(VOCAB, SamplerConfig(temperature=1.0, completion_bias_inclusion=(b"yes", b"not"), seed=seed))
        for _ in range(10):
            logits = np.zeros((1, len(PIECES)), dtype=F32)  # the step masks it in place
            result = sampler.step([seq], logits.ctypes.data, 1)[0]
            if result.status != 0:
                break
        assert seq.text() in (b"yes", b"not")
        assert result.status == 1  # end of text


def test_rank_orders_by_mean_logprob_ties_to_lower_index():
    sampler = Sampler(VOCAB, 4)
    sequences = [Sequence(VOCAB, SamplerConfig(score=True)) for _ in range(4)]
    means = []
    rng = np.random.default_rng(0)
    rows = [rng.normal(0, 2, (1, len(PIECES))).astype(F32) for _ in range(3)]
    rows.append(rows[1].copy())  # the last candidate ties the second: the lower index ranks first
    for seq, row in zip(sequences, rows):
        for _ in range(3):
            step_row = row.copy()  # the step may modify it
            sampler.step([seq], step_row.ctypes.data, 1)
        means.append(seq.mean_logprob)
    assert means[3] == means[1]
    assert all(not math.isnan(m) for m in means)
    expected = sorted(range(4), key=lambda i: (-means[i], i))
    assert sampler.rank(sequences) == expected
