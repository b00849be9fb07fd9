"""llama.cpp's CPU flash attention over the engine's bf16 KV cache, as patched where llama.cpp is
built with AVX-512 (patches/llama-cpp-python-0.3.36.patch, part 2: a row's visible cells 64 at a
time, their scores 16 at a time; elsewhere llama.cpp's own row-at-a-time path, which must pass the
same). It still computes attention, and a row still gets the same bits wherever its cells lie in
the cache and whatever else shares its batch: what speculation, several candidates and
concurrent requests rely on."""

import numpy as np
import pytest

from edgecomplete import models
from edgecomplete.engine import on_llama_thread
from edgecomplete.engine.drafts import MAX_DRAFT
from edgecomplete.engine.llama import BatchEntry, LlamaModel

from ..conftest import decoded_logits, random_tokens
from ..core import reference

MODELS = ["smollm2-135m", pytest.param("gemma-3-270m", marks=pytest.mark.slow)]
PROMPT_LENGTH = 300  # cells over five tiles of 64, and a partial sixth
STEP = 1 + MAX_DRAFT  # rows a step holds at most: what the engine's probe vouches for (16)


def log_softmax(rows: np.ndarray) -> np.ndarray:
    return np.stack([reference.log_softmax(row) for row in rows])


@pytest.fixture(scope="module", params=MODELS)
def path(request):
    return request.param, models.pull(request.param)


def test_flash_attention_over_bf16_computes_what_attention_without_it_computes(path):
    """Over a 300-token prompt, the log-probabilities of each position's top 20 tokens with flash
    attention over bf16 (the patched path) and without it (llama.cpp's matrix products and
    softmax, same cache) differ by no more than rounding: at most twice as much as the cache's
    element type alone moves them (f16 against bf16, both without flash attention), measured on
    this CPU in the same run. Rounding travels through every layer, so that scale is no smaller
    than a tenth of a unit on these models; a wrong score, weight or value moves them by units
    (the 16 scores of a group handed back in the wrong lanes: medians 3.0 and 3.9 against 0.07
    and 0.19)."""
    name, file = path

    def run(flash_attention, kv_cache):
        model = LlamaModel(file, flash_attention=flash_attention, kv_cache=kv_cache)
        try:
            tokens = random_tokens(model, PROMPT_LENGTH, seed=1)
            return log_softmax(decoded_logits(model, [BatchEntry(t, p, 0, True) for p, t in enumerate(tokens)]))
        finally:
            model.close()

    flash, plain, f16 = on_llama_thread(lambda: (run(True, "bf16"), run(False, "bf16"), run(False, "f16")))
    top = np.argsort(plain, axis=1)[:, -20:]

    def apart(ours):
        return np.abs(np.take_along_axis(ours, top, 1) - np.take_along_axis(plain, top, 1))

    attention, element_type = apart(flash), apart(f16)
    for statistic in (np.median, lambda d: np.quantile(d, 0.99)):
        assert statistic(attention) <= 2 * statistic(element_type), (name, statistic(attention), statistic(element_type))


def test_a_row_gets_the_same_bits_wherever_its_cells_lie(path):
    """A prompt decoded alone, then the same prompt decoded in pieces beside another sequence
    whose cells are taken back after each step (rejected drafts), so that the prompt's cells lie
    scattered among holes and the other sequence's cells. The next token's logits are the same
    bits either way, and with the other sequence in its batch."""
    name, file = path

    def run():
        model = LlamaModel(file, flash_attention=True, kv_cache="bf16")
        try:
            probe = model.rows_exact_in_batch(STEP)
            if probe.rows < STEP:
                return None
            tokens = random_tokens(model, PROMPT_LENGTH, seed=2)
            other = random_tokens(model, 200, seed=3)
            nxt = tokens[-1]
            for start in range(0, PROMPT_LENGTH - 1, STEP):
                decoded_logits(model, [BatchEntry(t, start + i, 0, False)
                                       for i, t in enumerate(tokens[start:min(start + STEP, PROMPT_LENGTH - 1)])])
            alone = decoded_logits(model, [BatchEntry(nxt, PROMPT_LENGTH - 1, 0, True)])[0]
            model.drop_sequence(0)

            decoded_logits(model, [BatchEntry(t, p, 1, False) for p, t in enumerate(other[:37])])
            rng = np.random.default_rng(4)
            done, theirs = 0, 37
            while done < PROMPT_LENGTH - 1:
                mine = int(rng.integers(1, STEP))
                mine = min(mine, PROMPT_LENGTH - 1 - done)
                beside = int(rng.integers(0, STEP - mine + 1))
                # the prompt's rows first, as the engine orders a step: its cells stay in position
                # order (a row sums its cells in cell order, on llama.cpp's path and the patch's)
                entries = [BatchEntry(t, done + i, 0, False) for i, t in enumerate(tokens[done:done + mine])]
                entries += [BatchEntry(other[theirs + i], theirs + i, 1, False) for i in range(beside)]
                decoded_logits(model, entries)
                done += mine
                kept = int(rng.integers(0, beside + 1))
                model.truncate_sequence(1, theirs + kept)  # the rest were drafts, rejected
                theirs += kept
            entries = [BatchEntry(nxt, PROMPT_LENGTH - 1, 0, True)]
            entries += [BatchEntry(other[theirs + i], theirs + i, 1, True) for i in range(5)]
            beside = decoded_logits(model, entries)[0]
            return alone, beside
        finally:
            model.close()

    result = on_llama_thread(run)
    if result is None:
        pytest.skip(f"llama.cpp rounds a batched row of {name} otherwise than alone on this CPU")
    alone, beside = result
    assert alone.tobytes() == beside.tobytes(), (name, float(np.abs(alone - beside).max()))
