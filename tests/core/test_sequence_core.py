"""Per-sequence state in C (penalty counts, text, stops, minimum_tokens) and the batch step,
against the reference chain, on a synthetic vocabulary."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecomplete._native import ffi, lib
from edgecomplete.sampling import (
    END_OF_TEXT,
    RUNNING,
    STOP_SEQUENCE,
    TOKEN_END_OF_GENERATION,
    TOKEN_SPECIAL,
    NativeError,
    SamplerConfig,
    Sampler,
    Sequence,
    Vocabulary,
)

from . import reference

F32 = np.float32
N_VOCAB = 40
EOS = 0
SPECIAL = 1


def synthetic_vocabulary() -> Vocabulary:
    """Token 0 is end-of-text, 1 a special token, the rest spell short strings."""
    vocabulary = Vocabulary(N_VOCAB)
    vocabulary.set_token(EOS, b"", b"</s>", TOKEN_END_OF_GENERATION)
    vocabulary.set_token(SPECIAL, b"", b"<|sep|>", TOKEN_SPECIAL)
    pieces = ["a", "b", " ", "ab", "ba", "\n", "é", "\xe2", "stop", "st", "op", "x"]
    for token in range(2, N_VOCAB):
        text = pieces[token % len(pieces)]
        piece = text.encode("latin-1" if text == "\xe2" else "utf-8")  # a lone UTF-8 lead byte
        vocabulary.set_token(token, piece, piece, 0)
    vocabulary.finalize()
    return vocabulary


VOCAB = synthetic_vocabulary()


def test_accept_tracks_text_raw_and_counts():
    config = SamplerConfig(penalty_context=(5, 5, 7), penalty_exceptions=(7,))
    seq = Sequence(VOCAB, config)
    assert seq.penalty_counts() == {5: 2}
    for token in (2, SPECIAL, 3, 2):
        result = seq.accept(token)
        assert result.status == RUNNING
    assert seq.text() == VOCAB.piece(2) + VOCAB.piece(3) + VOCAB.piece(2)
    assert seq.raw() == VOCAB.piece(2) + b"<|sep|>" + VOCAB.piece(3) + VOCAB.piece(2)
    assert seq.penalty_counts() == {5: 2, 2: 2, 3: 1, SPECIAL: 1}
    assert seq.accept(EOS).status == END_OF_TEXT
    assert seq.raw().endswith(b"</s>")
    with pytest.raises(NativeError, match="already finished"):
        seq.accept(2)


def test_completion_tokens_are_not_penalised_when_the_flag_is_off():
    seq = Sequence(VOCAB, SamplerConfig(penalize_completion=False, penalty_context=(4,)))
    seq.accept(2)
    seq.accept(4)
    assert seq.penalty_counts() == {4: 1}


def test_stop_sequence_across_tokens_cuts_the_text():
    token_st = next(t for t in range(2, N_VOCAB) if VOCAB.piece(t) == b"st")
    token_op = next(t for t in range(2, N_VOCAB) if VOCAB.piece(t) == b"op")
    token_a = next(t for t in range(2, N_VOCAB) if VOCAB.piece(t) == b"a")
    seq = Sequence(VOCAB, SamplerConfig(stop_sequences=(b"top",)))
    first = seq.accept(token_a)
    assert (first.status, first.stable_length) == (RUNNING, 1)
    second = seq.accept(token_st)
    assert (second.status, second.text_length, second.stable_length) == (RUNNING, 3, 2)  # "t" may begin "top"
    third = seq.accept(token_op)
    assert third.status == STOP_SEQUENCE
    assert third.text_length == third.stable_length == 2
    assert seq.text() == b"as"
    assert seq.raw() == b"astop"


def row_for(step_logits, config, generated, counts):
    """The reference chain for one row; `generated` are the tokens sampled so far."""
    row = step_logits.copy()
    for token, bias in config.logit_bias.items():
        row[token] = F32(row[token] + F32(bias))
    if len(generated) < config.minimum_tokens:
        row[EOS] = -np.inf
    if config.presence_penalty or config.frequency_penalty:
        row = reference.penalties(row, counts, config.presence_penalty, config.frequency_penalty,
                                  config.multiplicative_presence, config.multiplicative_frequency)
    n_key = config.sequence_min_length - 1
    if config.sequence_penalty and len(generated) >= n_key:
        history = list(config.sequence_context) + (list(generated) if config.penalize_completion else [])
        key = list(generated[len(generated) - n_key:])
        row = reference.sequence_penalty(row, history, key, config.sequence_penalty, config.multiplicative_sequence)
    u = lib.ec_uniform(config.seed, len(generated))
    return reference.sample_row(row, config.temperature, config.top_k, config.top_p, u)


configs = st.builds(
    SamplerConfig,
    temperature=st.sampled_from([0.0, 0.5, 1.0, 1.7]),
    top_k=st.integers(0, 12),
    top_p=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    presence_penalty=st.sampled_from([0.0, 0.5, -0.5, 1.5]),
    frequency_penalty=st.sampled_from([0.0, 0.25, -0.3]),
    multiplicative_presence=st.booleans(),
    multiplicative_frequency=st.booleans(),
    penalize_completion=st.booleans(),
    penalty_context=st.lists(st.integers(2, N_VOCAB - 1), max_size=8).map(tuple),
    penalty_exceptions=st.lists(st.integers(2, N_VOCAB - 1), max_size=3).map(tuple),
    logit_bias=st.dictionaries(st.integers(0, N_VOCAB - 1), st.floats(-3, 3, width=32), max_size=4),
    minimum_tokens=st.integers(0, 6),
    sequence_penalty=st.sampled_from([0.0, 0.0, 0.8, -0.4]),
    sequence_min_length=st.integers(2, 3),
    multiplicative_sequence=st.booleans(),
    sequence_context=st.lists(st.integers(2, 8), max_size=20).map(tuple),
    log_probs=st.sampled_from([None, None, 0, 3]),
    seed=st.integers(0, 2**64 - 1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs=st.lists(configs, min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_batch_step_equals_reference_chain_per_row(configs, seed):
    rng = np.random.default_rng(seed)
    sequences = [Sequence(VOCAB, c) for c in configs]
    sampler = Sampler(VOCAB, 4)
    expected_counts = []
    for c in configs:
        counts = {}
        for t in c.penalty_context:
            if t not in c.penalty_exceptions:
                counts[t] = counts.get(t, 0) + 1
        expected_counts.append(counts)
    live = list(range(len(configs)))
    generated = [[] for _ in configs]
    for _ in range(12):
        if not live:
            break
        logits = rng.normal(0, 2, (len(live), N_VOCAB)).astype(F32)
        raw = logits.copy()
        expected = [row_for(logits[r], configs[i], generated[i], expected_counts[i]) for r, i in enumerate(live)]
        results = sampler.step([sequences[i] for i in live], logits.ctypes.data, len(live))
        assert [r.token for r in results] == expected
        for r, (i, result) in enumerate(zip(live, results)):
            if configs[i].log_probs is None:
                assert math.isnan(result.logprob) and result.top == ()
                continue
            exact = reference.log_softmax(raw[r])
            assert abs(result.logprob - exact[result.token]) < 1e-4
            assert [t for t, _ in result.top] == reference.top_n(raw[r], configs[i].log_probs)
            assert all(abs(v - exact[t]) < 1e-4 for t, v in result.top)
        for i, token in zip(live, expected):
            if token != EOS:
                generated[i].append(token)
            if configs[i].penalize_completion and token not in configs[i].penalty_exceptions and token != EOS:
                expected_counts[i][token] = expected_counts[i].get(token, 0) + 1
        assert [sequences[i].penalty_counts() for i in live] == [expected_counts[i] for i in live]
        live = [i for i, r in zip(live, results) if r.status == RUNNING]


def test_minimum_tokens_masks_end_of_text():
    seq = Sequence(VOCAB, SamplerConfig(minimum_tokens=3))
    sampler = Sampler(VOCAB, 1)
    for step in range(3):
        logits = np.full((1, N_VOCAB), -5.0, dtype=F32)
        logits[0, EOS] = 10.0  # greedy would end the text at once
        logits[0, 3] = 1.0
        assert sampler.step([seq], logits.ctypes.data, 1)[0].token == 3
    logits[0, EOS] = 10.0
    assert sampler.step([seq], logits.ctypes.data, 1)[0].status == END_OF_TEXT


def test_step_refuses_bad_input_without_crashing():
    seq = Sequence(VOCAB, SamplerConfig())
    sampler = Sampler(VOCAB, 2)
    logits = np.zeros((1, N_VOCAB), dtype=F32)
    with pytest.raises(NativeError, match="sequences for 1 logits rows"):
        sampler.step([seq, Sequence(VOCAB, SamplerConfig())], logits.ctypes.data, 1)
    with pytest.raises(NativeError, match="outside the vocabulary"):
        Sequence(VOCAB, SamplerConfig(logit_bias={N_VOCAB: 1.0}))
    with pytest.raises(NativeError, match="outside the vocabulary"):
        Sequence(VOCAB, SamplerConfig(penalty_context=(-3,)))
    with pytest.raises(NativeError, match="top_p"):
        Sequence(VOCAB, SamplerConfig(top_p=1.5))
    with pytest.raises(NativeError, match="stop sequence 0 is empty"):
        Sequence(VOCAB, SamplerConfig(stop_sequences=(b"",)))
    with pytest.raises(NativeError, match="outside the vocabulary"):
        seq.accept(N_VOCAB)
    results = ffi.new("ec_step_result[]", 1)
    handles = ffi.new("ec_sequence *[]", [ffi.NULL])
    ws = ffi.gc(lib.ec_workspace_new(N_VOCAB), lib.ec_workspace_free)
    assert lib.ec_sample_step(ws, handles, 1, ffi.cast("float *", logits.ctypes.data), 1, N_VOCAB, results) == (
        lib.EC_ERR_ARGUMENT
    )
    assert lib.ec_vocab_set_token(VOCAB._handle, N_VOCAB, b"x", 1, b"x", 1, 0) == lib.EC_ERR_ARGUMENT
    assert lib.ec_vocab_piece(VOCAB._handle, -1, 0, ffi.NULL) == ffi.NULL
