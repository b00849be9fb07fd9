"""A decode of several rows of one sequence gives each row the bits that row gets decoded alone,
for every count a step may hold: what speculative decoding's greedy text rests on (its drafts are
verified in one batch). On the patched build with AMX (patches/llama-cpp-python-0.3.36.patch)
three kernels take part by count: one row takes ggml's one-row AVX512-VNNI kernel, 2 to 12 rows
of Q4_1 and Q8_0 weights the patch's several-row version of it (part 3), more rows the AMX tiles;
attention is the patch's (part 2) throughout. Elsewhere llama.cpp's own kernels, which must pass
the same where the engine's probe vouches for them."""

import numpy as np
import pytest

from edgecomplete import models
from edgecomplete.engine import on_llama_thread
from edgecomplete.engine.drafts import MAX_DRAFT
from edgecomplete.engine.llama import BatchEntry, LlamaModel, default_repack

from ..conftest import decoded_logits, random_tokens

MODELS = ["smollm2-135m", pytest.param("gemma-3-270m", marks=pytest.mark.slow)]
MOST = 1 + MAX_DRAFT  # rows a step holds at most (16)
CONTEXT = 200  # cells before the rows: several of attention's tiles of 64


@pytest.fixture(scope="module", params=MODELS)
def decoded(request):
    """Per row count n: the logits of n rows decoded in one batch, and of the same rows decoded
    one at a time; and the count the engine's load-time probe vouches for."""
    name = request.param

    def run():
        model = LlamaModel(models.pull(name), flash_attention=True, kv_cache="bf16")
        try:
            vouched = model.rows_exact_in_batch(MOST).rows
            tokens = random_tokens(model, CONTEXT + MOST, seed=5)
            for start in range(0, CONTEXT, 64):
                model.decode([BatchEntry(t, start + i, 0, False)
                              for i, t in enumerate(tokens[start:min(start + 64, CONTEXT)])])

            def rows(first, count):
                return decoded_logits(model, [BatchEntry(tokens[CONTEXT + i], CONTEXT + i, 0, True)
                                              for i in range(first, first + count)])

            alone = np.concatenate([rows(i, 1) for i in range(MOST)])

            def batched(count):
                model.truncate_sequence(0, CONTEXT)
                return rows(0, count)

            return {count: batched(count) for count in range(2, MOST + 1)}, alone, vouched
        finally:
            model.close()

    return (name, *on_llama_thread(run))


def test_every_count_of_rows_in_a_batch_gets_the_bits_of_each_row_alone(decoded):
    """For 2 to 16 rows (each kernel's counts, and where one hands over to the next), each row's
    logits are the same bits as that row decoded alone: on the patched build with AMX every
    count, on both models; elsewhere every count the engine's probe vouches for (it lets
    speculation use only those). A kernel that mixed up rows, read a row's weights or scale from
    the wrong place or rounded a row otherwise than alone moves them (each row of a group given
    its first row's Q8_1 block sum: the probe then vouches for one row). The rows alone differ
    from each other, so that a batch answering one row for all would fail too."""
    name, batched, alone, vouched = decoded
    assert all(np.abs(alone[i] - alone[i + 1]).max() > 0.1 for i in range(MOST - 1))
    if default_repack():
        assert vouched == MOST, (name, vouched)
    elif vouched == 1:
        pytest.skip(f"llama.cpp rounds a batched row of {name} otherwise than alone on this CPU")
    for count in range(2, vouched + 1):
        got = batched[count]
        assert got.tobytes() == alone[:count].tobytes(), (name, count, float(np.abs(got - alone[:count]).max()))
