"""gemma-3-270m (262,144-token vocabulary, sliding-window attention) loads and completes.

Marked slow: it pulls 253 MB on first use; `make test` runs it, `pytest` alone skips it.
"""

import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import pytest

from edgecomplete import Client, CompletionRequest, Prompt, fold_stream, models
from edgecomplete.engine import on_llama_thread
from edgecomplete.engine.llama import default_repack
from edgecomplete.engine.native import TILED_MATMUL_VARIABLE

from ..conftest import needs_batched_rows_exact, reference_llama, verify_every_draft

pytestmark = pytest.mark.slow
MODEL = "gemma-3-270m"


@pytest.fixture(scope="module")
def gemma():
    path = models.pull(MODEL)
    with Client(flash_attention=True) as client:
        yield client, path


def test_gemma_completes_greedily_like_llama_cpp(gemma):
    client, path = gemma
    prompt = "The three primary colours are"
    response = client.complete(CompletionRequest(prompt=Prompt.from_text(prompt), maximum_tokens=24), model=MODEL)
    engine = client.backend.engine(MODEL)
    assert engine.model.vocab_size == 262_144
    assert response.num_tokens_generated > 0
    assert response.num_tokens_prompt_total == len(engine.model.tokenize(prompt)) + 1  # BOS
    llama = reference_llama(path, n_ctx=1024, flash_attn=True)
    theirs = on_llama_thread(lambda: llama.create_completion(prompt, max_tokens=24, temperature=0.0, repeat_penalty=1.0))
    assert response.completions[0].completion == theirs["choices"][0]["text"]


def test_gemma_samples_candidates_with_penalties_and_stops(gemma):
    client, _ = gemma
    request = CompletionRequest(
        prompt=Prompt.from_text("Write a list of fruits:\n1."), maximum_tokens=40, temperature=0.8, top_k=40,
        top_p=0.9, presence_penalty=0.5, frequency_penalty=0.5, n=2, seed=3, stop_sequences=["\n\n"],
    )
    first = client.complete(request, model=MODEL)
    again = client.complete(request, model=MODEL)
    assert [c.completion for c in first.completions] == [c.completion for c in again.completions]
    assert len(first.completions) == 2
    for result in first.completions:
        assert "\n\n" not in result.completion
        assert result.finish_reason in ("maximum_tokens", "end_of_text", "stop_sequence_reached")


def test_repacked_weights_batch_rows_exactly_only_through_amx():
    """llama.cpp's repacked Q4_K kernels multiply 4 rows at a time, with other rounding than one
    row (3 exact rows on an AVX-512 machine, 16 unrepacked): the probe of a model repacked for them
    never allows more rows than unrepacked. ggml's AMX kernels (where the build has them, and then
    edgecomplete repacks by default) multiply each row as alone: never fewer rows than unrepacked."""
    rows = {}
    for repack in (False, True):
        with Client(flash_attention=True, repack=repack) as client:
            rows[repack] = client.backend.engine(MODEL).speculation_rows
    if default_repack():
        assert rows[True] >= rows[False], rows
    else:
        assert rows[True] <= rows[False], rows


def test_gemma_with_speculation_gives_the_text_without_it(gemma, monkeypatch):
    """Sliding-window layers and a probe that allows few rows (Q4_K weights multiply 4 rows at a
    time with other rounding on some CPUs): drafts still give the same greedy text and log-probs."""
    client, _ = gemma
    verify_every_draft(client.backend.engine(MODEL), monkeypatch)
    prompt = ("Colours: red, green, blue, yellow, purple, orange.\nThe same colours again: red, green, blue, "
              "yellow, purple, orange.\nThe same colours again:")
    request = CompletionRequest(prompt=Prompt.from_text(prompt), maximum_tokens=40, minimum_tokens=40, log_probs=2)
    with Client(flash_attention=True, speculation=False) as plain:
        ours = plain.complete(request, model=MODEL)
    theirs = client.complete(request, model=MODEL)
    assert theirs.completions == ours.completions
    rows = client.backend.engine(MODEL).speculation_rows
    assert rows >= 1 and theirs.decode_stats.decode_steps + theirs.decode_stats.accepted_drafts == 39
    if rows > 1:  # drafts were verified (the colours repeat)
        assert theirs.decode_stats.accepted_drafts > 0


def _in_a_process(script: str, tiled: Optional[str]) -> str:
    """What `script` prints in a fresh Python process whose GGML_CPU_TILED_MM is `tiled` (None:
    unset); ggml reads it once per process."""
    env = {k: v for k, v in os.environ.items() if k != TILED_MATMUL_VARIABLE}
    if tiled is not None:
        env[TILED_MATMUL_VARIABLE] = tiled
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()[-1]


def test_tiled_k_quant_products_are_off_unless_the_user_says(gemma):
    """ggml multiplies gemma's Q4_K and Q6_K weights by 8 rows or more in tiles, rounding otherwise
    than one row (x86: its tiled kernel is built for AVX and up). edgecomplete turns that off for
    its process where GGML_CPU_TILED_MM is unset, and keeps a value the user set: with it off
    every batch size the probe checks is as exact as with the tiles, and where they exist, more."""
    variable = ("import os, edgecomplete.engine.native\n"
                f"print(os.environ[{TILED_MATMUL_VARIABLE!r}])")
    assert _in_a_process(variable, None) == "0"
    assert _in_a_process(variable, "1") == "1"
    probe = ("from edgecomplete import Client\n"  # unrepacked: the tiles multiply only those
             "with Client(flash_attention=True, repack=False) as client:\n"
             f"    print(client.backend.engine({MODEL!r}).speculation_rows)")
    default, tiled = int(_in_a_process(probe, None)), int(_in_a_process(probe, "1"))
    assert tiled <= default
    if platform.machine() in ("x86_64", "AMD64") and " avx" in Path("/proc/cpuinfo").read_text():
        assert tiled < 8 <= default, (tiled, default)


def test_a_request_next_to_another_prompt_computes_what_it_does_alone(gemma):
    """A prompt chunk of another request makes a batch of many rows; every row of it, the running
    request's included, rounds as alone (the K-quant tiles are off): the same tokens and the same
    log-probs, bit for bit, as the request alone."""
    client, _ = gemma
    needs_batched_rows_exact(client.backend.engine(MODEL))
    request = CompletionRequest(prompt=Prompt.from_text("A list of rivers of Europe:\n1."), maximum_tokens=32,
                                minimum_tokens=32, log_probs=3, temperature=0.7, seed=11)
    alone = client.complete(request, model=MODEL)
    other = CompletionRequest(prompt=Prompt.from_text(" ".join(f"word{i}" for i in range(300))), maximum_tokens=4)
    items = client.complete_with_streaming(request, MODEL)
    first = next(items)  # the request is decoding: the other's prompt joins its steps
    with ThreadPoolExecutor(1) as pool:
        beside = pool.submit(client.complete, other, MODEL)
        together = fold_stream([first, *items])
        assert beside.result().num_tokens_prompt_total > 300
    assert together.completions == alone.completions
