"""gemma-3-270m (262,144-token vocabulary, sliding-window attention) loads and completes.

Marked slow: it pulls 253 MB on first use; `make test` runs it, `pytest` alone skips it.
"""

import pytest

from edgecomplete import Client, CompletionRequest, Prompt, models
from edgecomplete.engine import on_llama_thread

from ..conftest import reference_llama, verify_every_draft

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


def test_repacked_weights_batch_no_more_rows_exactly(gemma):
    """llama.cpp's repacked Q4_K kernels multiply 4 rows at a time, with other rounding than one
    row on the build machine (3 exact rows there, 7 without them): the probe of a repacked model
    never allows more rows than that of the default, unrepacked one."""
    client, _ = gemma
    with Client(flash_attention=True, repack=True) as repacked:
        assert repacked.backend.engine(MODEL).speculation_rows <= client.backend.engine(MODEL).speculation_rows


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
