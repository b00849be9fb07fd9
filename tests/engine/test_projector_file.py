"""check_projector: well-formed projectors pass, malformed ones are refused with a message naming
the file and the problem, and for some of them proof that llama.cpp would take the process down."""

import re
import signal
import subprocess
import sys

import llama_cpp
import numpy as np
import pytest

from edgecomplete.engine.projector_file import ProjectorError, check_projector
from tests.fixtures.projector import FEED_FORWARD, HIDDEN, WIDTH, write_projector


@pytest.fixture(scope="module")
def smollm2_has_token(smollm2_path):
    """has_token on SmolLM2's vocabulary: the text is one token when tokenized with specials parsed."""
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(smollm2_path).encode(), params)
    assert model
    vocab = llama_cpp.llama_model_get_vocab(model)

    def has_token(text: str) -> bool:
        data = text.encode()
        tokens = (llama_cpp.llama_token * 8)()
        return llama_cpp.llama_tokenize(vocab, data, len(data), tokens, len(tokens), False, True) == 1

    yield has_token
    llama_cpp.llama_model_free(model)


def any_token(text: str) -> bool:
    return True


def set_key(name, value):
    return lambda keys, tensors: keys.__setitem__(name, value)


def drop_key(name):
    return lambda keys, tensors: keys.pop(name)


def drop_tensors(*names):
    return lambda keys, tensors: [tensors.pop(name) for name in names]


def set_tensor(name, *numpy_shape, dtype=np.float32):
    return lambda keys, tensors: tensors.__setitem__(name, np.full(numpy_shape, 0.1, dtype))


def both(*edits):
    return lambda keys, tensors: [edit(keys, tensors) for edit in edits]


def idefics3(scale=2, fc_width=None):
    """The mlp fixture turned into an idefics3 (SmolVLM) projector: pixel shuffle by `scale`, then
    one projection mm.model.fc of the shuffled width (WIDTH * scale^2) into 576."""
    def edit(keys, tensors):
        keys["clip.projector_type"] = "idefics3"
        if scale:
            keys["clip.vision.projector.scale_factor"] = scale
        for name in [name for name in tensors if name.startswith("mm.")]:
            del tensors[name]
        tensors["mm.model.fc.weight"] = np.full((576, fc_width or WIDTH * (scale or 2) ** 2), 0.01, np.float32)
    return edit


# (id, kind written, edit, the text model's embedding width, what the message must say)
CASES = [
    ("image_size INT32", "mlp", set_key("clip.vision.image_size", (32, "add_int32")), 576,
     "key clip.vision.image_size is INT32, llama.cpp needs UINT32"),
    ("has_vision UINT32", "mlp", set_key("clip.has_vision_encoder", (1, "add_uint32")), 576,
     "key clip.has_vision_encoder is UINT32, llama.cpp needs BOOL"),
    ("projector_type UINT32", "mlp", set_key("clip.projector_type", (1, "add_uint32")), 576,
     "key clip.projector_type is UINT32, llama.cpp needs STRING"),
    ("epsilon FLOAT64", "mlp", set_key("clip.vision.attention.layer_norm_epsilon", (1e-6, "add_float64")), 576,
     "key clip.vision.attention.layer_norm_epsilon is FLOAT64, llama.cpp needs FLOAT32"),
    ("general.name UINT32", "mlp", set_key("general.name", (1, "add_uint32")), 576,
     "key general.name is UINT32, llama.cpp needs STRING"),
    ("image_size array", "mlp", set_key("clip.vision.image_size", ([32], "add_array")), 576,
     "key clip.vision.image_size is ARRAY of INT32, llama.cpp needs UINT32"),
    ("image_mean INT32 array", "mlp", set_key("clip.vision.image_mean", ([1, 1, 1], "add_array")), 576,
     "key clip.vision.image_mean is ARRAY of INT32, llama.cpp needs ARRAY of FLOAT32"),
    ("missing image_size", "mlp", drop_key("clip.vision.image_size"), 576,
     "key clip.vision.image_size is missing, llama.cpp needs it (UINT32)"),
    ("missing image_std", "mlp", drop_key("clip.vision.image_std"), 576, "key clip.vision.image_std is missing"),
    ("zero image_std", "mlp", set_key("clip.vision.image_std", [0.5, 0.0, 0.5]), 576,
     "key clip.vision.image_std must hold 3 finite numbers"),
    ("no vision encoder", "mlp", drop_key("clip.has_vision_encoder"), 576,
     "not a vision projector (clip.has_vision_encoder is missing or false)"),
    ("audio-only", "mlp", both(set_key("clip.has_vision_encoder", False), set_key("clip.has_audio_encoder", True)),
     576, "an audio-only projector"),
    ("vision and audio", "mlp", set_key("clip.has_audio_encoder", True), 576, "also has an audio encoder"),
    ("M-RoPE type", "mlp", set_key("clip.projector_type", "qwen2.5vl_merger"), 576,
     "projector type 'qwen2.5vl_merger': M-RoPE projectors (Qwen2-VL family) are not supported yet"),
    ("audio type", "mlp", set_key("clip.projector_type", "ultravox"), 576,
     "projector type 'ultravox' is an audio projector"),
    ("unknown type", "mlp", set_key("clip.projector_type", "nonsense"), 576,
     "projector type 'nonsense' is not supported (supported: mlp, gemma3, idefics3)"),
    ("empty type", "mlp", set_key("clip.projector_type", ""), 576, "no projector type"),
    ("mlp width", "mlp", None, 640, "projects images to width 576, but the text model's embedding width is 640"),
    ("gemma3 width", "gemma3", None, 640, "projects images to width 576, but the text model's embedding width is 640"),
    ("image_size 0", "mlp", set_key("clip.vision.image_size", 0), 576,
     "key clip.vision.image_size is 0, it must be between 1 and 8192"),
    ("image_size huge", "mlp", set_key("clip.vision.image_size", 2**32 - 1), 576,
     "key clip.vision.image_size is 4294967295, it must be between 1 and 8192"),
    ("patch_size 0", "mlp", set_key("clip.vision.patch_size", 0), 576, "key clip.vision.patch_size is 0"),
    ("patch_size not dividing", "mlp", set_key("clip.vision.patch_size", 5), 576,
     "patch size 5 does not divide image size 32"),
    ("block_count 0", "mlp", set_key("clip.vision.block_count", 0), 576, "key clip.vision.block_count is 0"),
    ("block_count beyond tensors", "mlp", set_key("clip.vision.block_count", 3), 576,
     "tensor v.blk.2.attn_q.weight is missing (mlp projectors need it)"),
    ("head_count not dividing", "mlp", set_key("clip.vision.attention.head_count", 3), 576,
     "head count 3 does not divide embedding length 32"),
    ("gelu and silu", "mlp", set_key("clip.use_silu", True), 576, "clip.use_gelu and clip.use_silu are both true"),
    ("grid pinpoints", "mlp", set_key("clip.vision.image_grid_pinpoints", ([64, 64], "add_array")), 576,
     "key clip.vision.image_grid_pinpoints (llava-1.6 image tiling) is not supported yet"),
    ("missing mm.2", "mlp", drop_tensors("mm.2.weight", "mm.2.bias"), 576,
     "tensor mm.2.weight is missing (mlp projectors need it)"),
    ("missing attn_q", "mlp", drop_tensors("v.blk.0.attn_q.weight"), 576, "tensor v.blk.0.attn_q.weight is missing"),
    ("missing patch embedding", "mlp", drop_tensors("v.patch_embd.weight"), 576,
     "tensor v.patch_embd.weight is missing"),
    ("missing position embedding", "mlp", drop_tensors("v.position_embd.weight"), 576,
     "tensor v.position_embd.weight is missing"),
    ("position embedding size", "mlp", set_tensor("v.position_embd.weight", 8, WIDTH), 576,
     "tensor v.position_embd.weight has shape [32, 8], llama.cpp needs [32, 16]"),
    ("patch kernel size", "mlp", set_tensor("v.patch_embd.weight", WIDTH, 3, 4, 4), 576,
     "tensor v.patch_embd.weight has shape [4, 4, 3, 32], llama.cpp needs [8, 8, 3, 32]"),
    ("ffn width equals embedding width", "mlp",
     both(set_tensor("v.blk.0.ffn_up.weight", WIDTH, WIDTH), set_tensor("v.blk.0.ffn_up.bias", WIDTH),
          set_tensor("v.blk.0.ffn_down.weight", WIDTH, WIDTH)), 576,
     "ffn width equals embedding length 32 in block 0: llama.cpp's heuristic for old converters would swap"),
    ("ffn misshaped", "mlp", set_tensor("v.blk.1.ffn_up.weight", 48, WIDTH), 576,
     f"tensor v.blk.1.ffn_down.weight has shape [{FEED_FORWARD}, 32], llama.cpp needs [48, 32]"),
    ("mm.0 input width", "mlp", set_tensor("mm.0.weight", HIDDEN, 16), 576,
     f"tensor mm.0.weight has shape [16, {HIDDEN}], llama.cpp needs [32, {HIDDEN}]"),
    ("F16 bias", "mlp", set_tensor("mm.0.bias", HIDDEN, dtype=np.float16), 576,
     "tensor mm.0.bias is F16, llama.cpp needs F32"),
    ("gemma3 scale factor 8", "gemma3", set_key("clip.vision.projector.scale_factor", 8), 576,
     "scale factor 8 does not divide the 4 patches per side"),
    ("gemma3 soft_emb_norm", "gemma3", set_tensor("mm.soft_emb_norm.weight", 7), 576,
     "tensor mm.soft_emb_norm.weight has shape [7], llama.cpp needs [32]"),
    ("gemma3 missing projection", "gemma3", drop_tensors("mm.input_projection.weight"), 576,
     "tensor mm.input_projection.weight is missing (gemma3 projectors need it)"),
    ("idefics3 without scale factor", "mlp", idefics3(scale=None), 576,
     "idefics3 needs key clip.vision.projector.scale_factor of at least 2"),
    ("idefics3 fc width", "mlp", idefics3(fc_width=WIDTH), 576,
     "tensor mm.model.fc.weight has shape [32, 576], llama.cpp needs [128, 576]"),
]
BY_ID = {case[0]: case for case in CASES}


def write_case(tmp_path, case_id):
    _, kind, edit, _, _ = BY_ID[case_id]
    return write_projector(tmp_path / "mmproj.gguf", embedding_size=576, kind=kind, edit=edit)


def refused(path, embedding_size, has_token=any_token) -> str:
    with pytest.raises(ProjectorError) as refusal:
        check_projector(path, embedding_size, has_token)
    message = str(refusal.value)
    assert message.startswith(f"projector {path}: "), message
    return message


def test_the_fixture_mlp_projector_passes(tmp_path):
    facts = check_projector(write_projector(tmp_path / "mlp.gguf"), 576, any_token)
    assert (facts.kind, facts.embedding_size, facts.image_tokens, facts.non_causal) == ("mlp", 576, 16, False)
    assert (facts.image_size, facts.patch_size, facts.encoder_width, facts.merge) == (32, 8, WIDTH, 1)


def test_a_gemma3_projector_passes_at_gemma_3s_width(tmp_path):
    projector = write_projector(tmp_path / "gemma3.gguf", embedding_size=640, kind="gemma3")
    facts = check_projector(projector, 640, any_token)
    assert (facts.kind, facts.embedding_size, facts.merge, facts.image_tokens, facts.non_causal) == \
        ("gemma3", 640, 2, 4, True)


def test_ffn_tensors_swapped_by_an_old_converter_pass_as_llama_cpp_swaps_them_back(tmp_path):
    def swap(keys, tensors):
        for block in range(2):
            for part in ("weight", "bias"):
                up, down = f"v.blk.{block}.ffn_up.{part}", f"v.blk.{block}.ffn_down.{part}"
                tensors[up], tensors[down] = tensors[down], tensors[up]
    assert check_projector(write_projector(tmp_path / "swapped.gguf", edit=swap), 576, any_token).kind == "mlp"


def test_idefics3_passes_with_a_vocabulary_that_has_its_image_tokens(tmp_path):
    asked = []
    facts = check_projector(write_projector(tmp_path / "smolvlm.gguf", edit=idefics3()), 576,
                            lambda text: asked.append(text) or True)
    assert (facts.kind, facts.merge, facts.image_tokens, facts.tiled) == ("idefics3", 2, 4, True)
    assert asked == list(facts.looked_up_tokens) == ["\n\n", "\n", "<fake_token_around_image>", "<global-img>"]


def test_idefics3_with_smollm2s_vocabulary_names_the_missing_token(tmp_path, smollm2_has_token):
    assert smollm2_has_token("\n\n") and smollm2_has_token("<|im_start|>")  # the helper sees real tokens
    message = refused(write_projector(tmp_path / "smolvlm.gguf", edit=idefics3()), 576, smollm2_has_token)
    assert "vocabulary has no '<fake_token_around_image>' token, which idefics3 projectors need" in message


@pytest.mark.parametrize("case_id", [case[0] for case in CASES])
def test_a_malformed_projector_is_refused_naming_the_problem(tmp_path, case_id):
    _, _, _, embedding_size, expected = BY_ID[case_id]
    assert expected in refused(write_case(tmp_path, case_id), embedding_size)


def test_files_that_are_no_projector_are_refused(tmp_path, smollm2_path):
    whole = write_projector(tmp_path / "whole.gguf").read_bytes()
    for name, data, expected in [("truncated.gguf", whole[:-1000], "not a readable GGUF file (truncated or corrupt?)"),
                                 ("header.gguf", whole[:300], "not a readable GGUF file"),
                                 ("random.gguf", np.random.default_rng(0).bytes(4096), "GGUF magic invalid"),
                                 ("empty.gguf", b"", "not a readable GGUF file")]:
        (tmp_path / name).write_bytes(data)
        assert expected in refused(tmp_path / name, 576)
    assert "no such file" in refused(tmp_path / "absent.gguf", 576)
    assert "not a vision projector" in refused(smollm2_path, 576)  # a text model


# Loads a projector with libmtmd as the engine would (SmolLM2, CPU, no warmup), then, by `stage`,
# tokenizes a prompt with one 64x64 image and encodes it, or evaluates every chunk.
PROBE = """
import ctypes, sys
import llama_cpp
from llama_cpp import mtmd_cpp as mtmd
projector, model_path, stage = sys.argv[1:]
llama_cpp.llama_backend_init()
model = llama_cpp.llama_model_load_from_file(model_path.encode(), llama_cpp.llama_model_default_params())
params = mtmd.mtmd_context_params_default()
params.use_gpu, params.warmup, params.n_threads = False, False, 1
context = mtmd.mtmd_init_from_file(projector.encode(), model, params)
print("loaded", bool(context), flush=True)
if stage != "load" and context:
    pixels = (ctypes.c_uint8 * (64 * 64 * 3))(*([128] * (64 * 64 * 3)))
    bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(mtmd.mtmd_bitmap_init(64, 64, pixels))
    chunks = mtmd.mtmd_input_chunks_init()
    prompt = b"Look: " + mtmd.mtmd_default_marker()
    text = mtmd.mtmd_input_text(prompt, len(prompt), True, True)
    assert mtmd.mtmd_tokenize(context, chunks, ctypes.byref(text), bitmaps, 1) == 0
    if stage == "encode":
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == 1:
                assert mtmd.mtmd_encode_chunk(context, chunk) == 0
    else:
        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx, context_params.n_threads, context_params.n_threads_batch = 512, 1, 1
        llama_context = llama_cpp.llama_init_from_model(model, context_params)
        n_past = llama_cpp.llama_pos(0)
        assert mtmd.mtmd_helper_eval_chunks(context, llama_context, chunks, 0, 0, 512, True, ctypes.byref(n_past)) == 0
print("survived", flush=True)
"""


def probe(projector, smollm2_path, stage):
    return subprocess.run([sys.executable, "-c", PROBE, str(projector), str(smollm2_path), stage],
                          capture_output=True, text=True, timeout=300)


def test_the_probe_survives_a_valid_projector(tmp_path, smollm2_path):
    for kind in ("mlp", "gemma3"):
        run = probe(write_projector(tmp_path / f"{kind}.gguf", kind=kind), smollm2_path, "evaluate")
        assert run.returncode == 0 and "survived" in run.stdout, run.stderr[-2000:]


# Confirmed crashes of the unchecked file. Cases where llama.cpp copes instead: a missing key,
# an INT32 image_mean array, an unknown type, random or truncated-header bytes, patch_size 0 and
# block_count beyond the tensors make mtmd_init_from_file return NULL (clip_init catches its own
# exceptions); image_size 0 makes mtmd_tokenize return 2; a truncated tensor is read as garbage,
# a 4x4 kernel for 8x8 patches and block_count 0 encode without complaint (wrong, not fatal).
CRASHES = [
    ("image_size INT32", "load", signal.SIGABRT, "gguf.cpp"),  # GGML_ASSERT in gguf_get_val_u32
    ("has_vision UINT32", "load", signal.SIGABRT, "gguf.cpp"),
    ("image_size array", "load", signal.SIGABRT, "gguf.cpp"),  # an array of one where a scalar goes
    ("missing mm.2", "load", signal.SIGSEGV, ""),  # clip_n_mmproj_embd reads mm.2.weight's ne[1]
    ("missing attn_q", "encode", signal.SIGSEGV, ""),
    ("position embedding size", "encode", signal.SIGABRT, "GGML_ASSERT"),  # get_rows out of range
    ("head_count not dividing", "encode", signal.SIGABRT, "GGML_ASSERT"),
    ("gemma3 scale factor 8", "encode", signal.SIGABRT, "GGML_ASSERT"),
    ("idefics3 without scale factor", "encode", signal.SIGABRT, "GGML_ASSERT(scale_factor > 1)"),
]


@pytest.mark.parametrize("case_id, stage, crash, evidence", CRASHES, ids=[case[0] for case in CRASHES])
def test_unchecked_the_malformed_projector_kills_the_process(tmp_path, smollm2_path, case_id, stage, crash,
                                                             evidence):
    run = probe(write_case(tmp_path, case_id), smollm2_path, stage)
    assert run.returncode == -crash, (run.returncode, run.stdout, run.stderr[-2000:])
    assert evidence in run.stderr and "survived" not in run.stdout


def test_unchecked_idefics3_with_smollm2s_vocabulary_aborts_decoding_token_minus_one(tmp_path, smollm2_path):
    run = probe(write_projector(tmp_path / "smolvlm.gguf", edit=idefics3()), smollm2_path, "evaluate")
    assert run.returncode == -signal.SIGABRT, (run.returncode, run.stderr[-2000:])
    assert re.search(r"mtmd-helper\.cpp:\d+: GGML_ASSERT\(idx >= 0\)", run.stderr)
