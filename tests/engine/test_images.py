"""Images in prompts through the real libmtmd, with a synthetic projector (tests/fixtures/
projector.py): no vision model can be fetched here, so what is tested is the mechanism — how
prompts split into chunks, where the image's embeddings go, what is reused and what stays exact —
against llama.cpp's own image path on this machine, never against text one machine produced."""

import ctypes
import io
import os
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from llama_cpp import mtmd_cpp
from PIL import Image as PILImage

from edgecomplete import Client, CompletionRequest, Image, InvalidRequest, Prompt, Text, models
from edgecomplete.engine import LocalBackend
from edgecomplete.engine.thread import on_llama_thread
from edgecomplete.plan import image_token, plan_completion
from edgecomplete.stream import fold

from ..conftest import MODEL
from ..fixtures.projector import write_projector

IMAGE_POSITIONS = 16  # (32 / 8)^2 patches of the synthetic mlp projector


def picture(color, size=(48, 40), pattern: int = 0) -> Image:
    """A PNG of one colour, with a stripe every `pattern` pixels."""
    canvas = PILImage.new("RGB", size, color)
    for x in range(0, size[0], pattern or size[0] + 1):
        for y in range(size[1]):
            canvas.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    data = io.BytesIO()
    canvas.save(data, "PNG")
    return Image.from_bytes(data.getvalue())


RED, BLUE = picture((220, 30, 30)), picture((30, 30, 220), pattern=5)


def about(image, question=" What is in the picture? It is", **fields):
    fields = {"maximum_tokens": 12, "log_probs": 3, "tokens": True, **fields}
    return CompletionRequest(prompt=Prompt([Text.from_text("Look at this:"), image, Text.from_text(question)]),
                             **fields)


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    return write_projector(tmp_path_factory.mktemp("vision") / "mmproj.gguf", scale=4.0)


@pytest.fixture(scope="module")
def vision(smollm2_path, projector):
    """A client whose smollm2 sees images (no prefix slots: every request computes alone)."""
    with Client(backend=LocalBackend(projectors={MODEL: projector}, prefix_cache=False)) as client:
        yield client


def first_logprobs(response):
    """The top log-probs of each generated position: what an image must change."""
    return [dict(entry) for entry in response.completions[0].log_probs]


def test_text_image_text_prompt_splits_into_tokens_and_one_image_chunk(vision):
    engine = vision.backend.engine(MODEL)
    plan = plan_completion(about(RED), engine.model, vision=engine.projector)
    before, after = engine.model.tokenize("Look at this:"), engine.model.tokenize(" What is in the picture? It is")
    lead = [engine.model.bos] if engine.model.add_bos else []  # smollm2 starts without BOS
    (span,) = plan.images
    assert (span.start, span.chunk.positions) == (len(lead) + len(before), IMAGE_POSITIONS)
    assert plan.prompt_tokens == (*lead, *before, *[image_token(span.chunk.key)] * IMAGE_POSITIONS, *after)
    assert vision.backend.model_info(MODEL)["vision"] is True


def test_an_image_changes_the_logits_and_the_same_image_gives_the_same_result(vision):
    red, red_again, blue = (vision.complete(about(image), MODEL) for image in (RED, RED, BLUE))
    assert red == red_again  # bit for bit: text, tokens and log-probs
    assert red.completions[0].log_probs != blue.completions[0].log_probs
    # Not a rounding difference: the most likely next token's log-prob moves by far more.
    (token, logprob), = list(red.completions[0].log_probs[0].items())[:1]
    other = blue.completions[0].log_probs[0].get(token, -99.0)
    assert abs(logprob - other) > 0.05


def test_the_same_pixels_in_another_file_format_are_the_same_image(vision):
    as_png = RED.to_image()
    buffer = io.BytesIO()
    as_png.save(buffer, "BMP")
    assert vision.complete(about(Image.from_bytes(buffer.getvalue())), MODEL) == vision.complete(about(RED), MODEL)


def reference_greedy(model_path: Path, projector: Path, image: Image, before: str, after: str, count: int):
    """llama.cpp's own image path: libmtmd tokenizes text-marker-text and its helper evaluates
    every chunk (mtmd_helper_eval_chunks), then plain greedy decoding — in a fresh context that
    computes as the engine does (its KV cache type and weight repacking)."""
    from bench.common import edgecomplete_numerics
    from edgecomplete.images import prepare

    def run():
        numerics = edgecomplete_numerics()
        model_params = llama_cpp.llama_model_default_params()
        model_params.use_extra_bufts = numerics["repack"]
        model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), model_params)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch, params.n_threads, params.n_threads_batch = 1024, 512, 512, 2, 2
        params.type_k, params.type_v = numerics["type_k"], numerics["type_v"]
        context = llama_cpp.llama_init_from_model(model, params)
        mparams = mtmd_cpp.mtmd_context_params_default()
        mparams.n_threads, mparams.warmup = 2, False
        mtmd = mtmd_cpp.mtmd_init_from_file(str(projector).encode(), model, mparams)
        prepared = prepare(image, 1)
        data = (ctypes.c_uint8 * len(prepared.rgb)).from_buffer_copy(prepared.rgb)
        bitmap = mtmd_cpp.mtmd_bitmap_init(prepared.width, prepared.height, data)
        text = (before + mtmd_cpp.mtmd_default_marker().decode() + after).encode()
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        assert mtmd_cpp.mtmd_tokenize(mtmd, chunks, ctypes.byref(mtmd_cpp.mtmd_input_text(text, len(text), True, True)),
                                      (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) == 0
        n_past = llama_cpp.llama_pos(0)
        assert mtmd_cpp.mtmd_helper_eval_chunks(mtmd, context, chunks, 0, 0, 512, True, ctypes.byref(n_past)) == 0
        vocab, tokens, batch = llama_cpp.llama_model_get_vocab(model), [], llama_cpp.llama_batch_init(1, 0, 1)
        for _ in range(count):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(context, -1), shape=(llama_cpp.llama_vocab_n_tokens(vocab),))
            token = int(np.argmax(logits))
            tokens.append(token)
            batch.n_tokens, batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.logits[0] = 1, token, n_past.value, 1, True
            batch.seq_id[0][0] = 0
            assert llama_cpp.llama_decode(context, batch) == 0
            n_past.value += 1
        for free in (lambda: llama_cpp.llama_batch_free(batch), lambda: mtmd_cpp.mtmd_input_chunks_free(chunks),
                     lambda: mtmd_cpp.mtmd_bitmap_free(bitmap), lambda: mtmd_cpp.mtmd_free(mtmd),
                     lambda: llama_cpp.llama_free(context), lambda: llama_cpp.llama_model_free(model)):
            free()
        return tokens

    return on_llama_thread(run)


def test_greedy_with_an_image_equals_llama_cpps_own_image_path(vision, smollm2_path, projector):
    before, after = "Look at this:", " What is in the picture? It is"
    ours = vision.complete(about(RED, maximum_tokens=16, log_probs=None), MODEL).completions[0].completion_tokens
    theirs = reference_greedy(smollm2_path, projector, RED, before, after, 16)
    engine = vision.backend.engine(MODEL)
    assert [engine.model.vocabulary.piece(t, raw=True).decode("utf-8", "replace") for t in theirs] == ours


def test_candidates_and_streaming_with_an_image(vision):
    sampled = dict(temperature=1.0, top_k=40, seed=7, maximum_tokens=10)
    three = vision.complete(about(RED, n=3, **sampled), MODEL)
    alone = [vision.complete(about(RED, **{**sampled, "seed": 7 + i}), MODEL) for i in range(3)]
    assert three.completions == [response.completions[0] for response in alone]
    assert three.num_tokens_prompt_total == 3 * alone[0].num_tokens_prompt_total  # image positions included
    streamed = fold(vision.complete_with_streaming(about(BLUE, **sampled), MODEL))
    assert streamed == vision.complete(about(BLUE, **sampled), MODEL)


def test_a_follow_up_turn_reuses_the_images_cells_without_encoding_it_again(smollm2_path, projector):
    with Client(backend=LocalBackend(projectors={MODEL: projector})) as warm, \
            Client(backend=LocalBackend(projectors={MODEL: projector}, prefix_cache=False)) as cold:
        engine = warm.backend.engine(MODEL)
        first = warm.complete(about(RED, maximum_tokens=8), MODEL)
        before = engine.stats()
        follow_up = about(RED, question=" What is in the picture? It is" + first.completions[0].completion
                          + " And its colour?", maximum_tokens=8)
        second = warm.complete(follow_up, MODEL)
        after = engine.stats()
        assert after["images_encoded"] == before["images_encoded"]  # not encoded again
        assert after["prompt_tokens_reused"] - before["prompt_tokens_reused"] >= 1 + 3 + IMAGE_POSITIONS
        assert second == cold.complete(follow_up, MODEL)  # and it computes what a cold engine does
        # Another image at the same place is not mistaken for it.
        third = warm.complete(about(BLUE, maximum_tokens=8), MODEL)
        assert engine.stats()["images_encoded"] == after["images_encoded"] + 1
        assert third == cold.complete(about(BLUE, maximum_tokens=8), MODEL)


def test_image_requests_next_to_text_requests_leave_every_one_exact(vision):
    texts = [CompletionRequest(prompt=Prompt.from_text(f"Story number {i}: once upon a time"), maximum_tokens=24,
                               temperature=0.9, seed=i, log_probs=2) for i in range(3)]
    images = [about(image, maximum_tokens=20, temperature=0.9, seed=11) for image in (RED, BLUE)]
    alone = [vision.complete(request, MODEL) for request in texts + images]
    streams = [vision.complete_with_streaming(request, MODEL) for request in texts + images]
    together = [fold(stream) for stream in streams]
    assert together == alone


def test_image_requests_are_refused_clearly(vision, client):
    with pytest.raises(InvalidRequest, match="echo"):
        vision.complete(about(RED, echo=True), MODEL)
    with pytest.raises(InvalidRequest, match="no vision projector"):
        client.complete(about(RED), MODEL)
    with pytest.raises(InvalidRequest, match=r"item 1 \(image\): not an image"):
        vision.complete(about(Image.from_bytes(b"not a picture")), MODEL)
    assert vision.complete(about(RED, maximum_tokens=2), MODEL).completions  # and it keeps serving


@pytest.mark.slow
def test_a_gemma3_projector_decodes_its_image_non_causally(tmp_path):
    """Gemma 3's projector: its image between <start_of_image> / <end_of_image> text, attended
    both ways (llama.cpp's non-causal image decode), through gemma-3-270m."""
    models.pull("gemma-3-270m")
    projector = write_projector(tmp_path / "gemma-mmproj.gguf", embedding_size=640, kind="gemma3", scale=4.0)
    with Client(backend=LocalBackend(projectors={"gemma-3-270m": projector})) as client:
        engine = client.backend.engine("gemma-3-270m")
        plan = plan_completion(about(RED), engine.model, vision=engine.projector)
        (span,) = plan.images
        assert span.chunk.non_causal and span.chunk.positions == 4
        red, red_again, blue = (client.complete(about(image), "gemma-3-270m") for image in (RED, RED, BLUE))
        assert red == red_again and red.completions[0].log_probs != blue.completions[0].log_probs


REAL_MODEL, REAL_PROJECTOR = os.environ.get("EDGECOMPLETE_VISION_GGUF"), os.environ.get("EDGECOMPLETE_VISION_MMPROJ")


@pytest.mark.skipif(not (REAL_MODEL and REAL_PROJECTOR),
                    reason="no real vision model here: set EDGECOMPLETE_VISION_GGUF and EDGECOMPLETE_VISION_MMPROJ "
                           "to a model and its projector (e.g. SmolVLM-500M-Instruct) to run it")
def test_a_real_vision_model_tells_red_from_blue():
    with Client(backend=LocalBackend(projectors={REAL_MODEL: REAL_PROJECTOR})) as client:
        answers = {}
        for name, color in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
            request = CompletionRequest(
                prompt=Prompt([Text.from_text("User:"), picture(color, (256, 256)),
                               Text.from_text("What colour is this image? Answer in one word.<end_of_utterance>\nAssistant:")]),
                maximum_tokens=8)
            answers[name] = client.complete(request, REAL_MODEL).completions[0].completion.lower()
        assert "red" in answers["red"] and "blue" in answers["blue"], answers


def test_a_projector_made_for_another_model_is_refused_and_nothing_aborts(smollm2_path, tmp_path):
    wrong = write_projector(tmp_path / "gemma-width.gguf", embedding_size=640)
    with Client(mmproj={MODEL: wrong}) as client:
        with pytest.raises(models.ModelError, match="640.*576|576.*640"):
            client.complete(about(RED), MODEL)
        with pytest.raises(models.ModelError, match="640.*576|576.*640"):  # still refused, still running
            client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=2), MODEL)
