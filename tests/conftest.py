"""Shared fixtures: the real default model, pulled on first use, and one client for the session."""

import ctypes
import os
import signal

import numpy as np
import pytest

from edgecomplete import Client, models

MODEL = "smollm2-135m"


def needs_batched_rows_exact(engine) -> None:
    """Skip, saying why, where llama.cpp computes a row of a batch otherwise than the same row
    alone on this CPU for this model (the engine's probe, `speculation_rows`: 16 rows batch
    exactly on the build machine). Comparisons of rows that shared a batch with runs alone need
    it."""
    from edgecomplete.engine.drafts import MAX_DRAFT

    if engine.speculation_rows < 1 + MAX_DRAFT:
        pytest.skip(f"llama.cpp rounds a batched row otherwise than alone here (exact up to "
                    f"{engine.speculation_rows} rows): runs together cannot equal runs alone")


def verify_every_draft(engine, monkeypatch) -> None:
    """The engine verifies every draft that fits in a step, whatever its DraftPolicy learnt: an
    engine shared by several tests learns from their sampled text (and from this machine's
    timings) how often drafts pay, and may stop drafting. For tests that need drafts verified."""
    policy = engine.draft_policy
    monkeypatch.setattr(policy, "choose", lambda draft, drafter, rows_before:
                        max(0, min(len(draft.tokens), policy.most_rows - rows_before - 1)))


def reference_llama(path, **options):
    """llama-cpp-python's Llama over `path` on the llama thread, with the engine's KV cache type
    (bf16 on the CPU; llama-cpp-python's default is f16) and weights repacked as the engine's
    (only for ggml's AMX kernels; llama-cpp-python always repacks), so that both compute alike (and
    ggml's tiled K-quant products off, for the whole process: edgecomplete/engine/native.py)."""
    from bench.common import edgecomplete_numerics, load_llama
    from edgecomplete.engine import on_llama_thread

    return on_llama_thread(lambda: load_llama(path, n_threads=2, **edgecomplete_numerics(), **options))


def logits_rows(address: int, n_rows: int, n_vocab: int) -> np.ndarray:
    """A copy of `n_rows` float32 logits rows of `n_vocab` at `address` (llama.cpp's, or the
    engine's as handed to the sampler): valid only until the next decode."""
    return np.ctypeslib.as_array((ctypes.c_float * (n_rows * n_vocab)).from_address(address)) \
        .reshape(n_rows, n_vocab).copy()


def decoded_logits(model, entries) -> np.ndarray:
    """Decode `entries` (BatchEntry) on a LlamaModel; a copy of the logits of those that asked
    for them, one row each, in batch order."""
    return logits_rows(model.decode(entries), sum(entry.logits for entry in entries), model.vocab_size)


def random_tokens(model, length: int, seed: int) -> list:
    """`length` token ids drawn with `seed`, clear of the vocabulary's first and last 100
    (special and control tokens)."""
    return np.random.default_rng(seed).integers(100, model.vocab_size - 100, length).tolist()


def sigint_as_in_a_terminal() -> None:
    """`preexec_fn` of a subprocess a test interrupts: a background job (`make test &`) starts
    with SIGINT ignored, which its children inherit (Python then installs no KeyboardInterrupt
    handler); the child gets it back as from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session", autouse=True)
def data_folder(tmp_path_factory):
    """The tests' own data folder (steering concepts, sessions): never the user's."""
    folder = tmp_path_factory.mktemp("data")
    previous = os.environ.get("EDGECOMPLETE_DATA")
    os.environ["EDGECOMPLETE_DATA"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("EDGECOMPLETE_DATA", None)
    else:
        os.environ["EDGECOMPLETE_DATA"] = previous


@pytest.fixture(scope="session")
def smollm2_path():
    return models.pull(MODEL)


@pytest.fixture(scope="session")
def client(smollm2_path):
    with Client() as client:
        yield client


@pytest.fixture(scope="session")
def engine(client):
    return client.backend.engine(MODEL)


@pytest.fixture
def sampled_rows(engine, monkeypatch):
    """The raw logits rows the engine hands its C sampler from now on: one array per sampling
    call, copied before sampling changes them in place. A test that knows what the sampler saw
    can derive what it must pick on this machine, whatever this CPU's logits are."""
    sampler, n_vocab = engine.sampler, engine.model.vocab_size
    step_drafts, step_shared = sampler.step_drafts, sampler.step_shared
    rows = []

    def copy(address, n_rows):
        return logits_rows(address, n_rows, n_vocab)

    def recording_step(sequences, drafts, logits_address, n_rows):  # rows of drafts too (speculation)
        rows.append(copy(logits_address, n_rows))
        return step_drafts(sequences, drafts, logits_address, n_rows)

    def recording_step_shared(sequences, row_address):
        rows.append(copy(row_address, 1))
        return step_shared(sequences, row_address)

    monkeypatch.setattr(sampler, "step_drafts", recording_step)
    monkeypatch.setattr(sampler, "step_shared", recording_step_shared)
    return rows


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """An empty edgecomplete home and a pip that only sees the test's wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("EDGECOMPLETE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels
