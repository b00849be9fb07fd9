"""Check a vision projector (an "mmproj" GGUF) before libmtmd is given it.

llama.cpp kills the process on many malformed projectors: a key of the wrong GGUF type trips a
GGML_ASSERT (mtmd_init_from_file only turns C++ exceptions into NULL), a missing optional tensor
is dereferenced, misshaped tensors abort when the first image is encoded, and a vocabulary without
idefics3's image tokens aborts decoding. So the file is read with the `gguf` package, never with
llama.cpp, and only types whose every tensor is checked here are accepted (llama-cpp-python
0.3.36's tools/mtmd/clip.cpp, mtmd.cpp, models/llava.cpp, models/siglip.cpp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn, Optional, Tuple

import gguf

from edgecomplete.models import ModelError

V = gguf.GGUFValueType
SUPPORTED = ("mlp", "gemma3", "idefics3")
# Types of the Qwen2-VL family and others whose text models decode with M-RoPE positions
# (llama_model_rope_type MROPE/IMROPE, hence mtmd_decode_use_mrope): qwen2.5o is Qwen2.5-VL's.
MROPE = {"qwen2vl_merger", "qwen2.5vl_merger", "qwen3vl_merger", "qwen2.5o", "glm4v", "paddleocr", "hunyuanvl"}
AUDIO = {"ultravox", "qwen2a", "qwen3a", "glma", "voxtral", "meralion", "musicflamingo", "lfm2a", "gemma3na",
         "gemma4a", "gemma4ua", "dots3note_a", "granite_speech", "parakeet", "mimo_audio", "qwen3tts_spkenc",
         "qwen3tts_gen", "pockettts_spkenc", "pockettts_gen"}
# Single tokens mtmd.cpp finds with lookup_token (a -1 when absent aborts at decode); gemma3's
# <start_of_image>/<end_of_image> are tokenized as text instead, so they need no check.
LOOKED_UP = {"idefics3": ("\n\n", "\n", "<fake_token_around_image>", "<global-img>")}
# Every key clip.cpp reads for a vision projector with a getter that GGML_ASSERTs its type
# (gguf_get_val_*: an array where a scalar is expected aborts too); arrays only throw.
KEYS = {
    "general.name": V.STRING, "general.description": V.STRING,
    "clip.has_vision_encoder": V.BOOL, "clip.has_audio_encoder": V.BOOL, "clip.has_gen_audio_encoder": V.BOOL,
    "clip.projector_type": V.STRING, "clip.vision.projector_type": V.STRING,
    "clip.vision.embedding_length": V.UINT32, "clip.vision.attention.head_count": V.UINT32,
    "clip.vision.attention.head_dim": V.UINT32, "clip.vision.feed_forward_length": V.UINT32,
    "clip.vision.block_count": V.UINT32, "clip.vision.projection_dim": V.UINT32,
    "clip.vision.attention.layer_norm_epsilon": V.FLOAT32, "clip.vision.attention.head_count_kv": V.UINT32,
    "clip.vision.image_size": V.UINT32, "clip.vision.patch_size": V.UINT32,
    "clip.minicpmv_version": V.INT32, "clip.minicpmv_query_num": V.UINT32,
    "clip.use_gelu": V.BOOL, "clip.use_silu": V.BOOL, "clip.vision.mm_patch_merge_type": V.STRING,
    "clip.vision.projector.scale_factor": V.UINT32, "clip.vision.preproc_image_size": V.UINT32,
    "clip.vision.image_grid_pinpoints": (V.ARRAY, V.INT32), "clip.vision.feature_layer": (V.ARRAY, V.INT32),
    "clip.vision.image_mean": (V.ARRAY, V.FLOAT32), "clip.vision.image_std": (V.ARRAY, V.FLOAT32),
}
REQUIRED = ("clip.vision.embedding_length", "clip.vision.attention.head_count", "clip.vision.feed_forward_length",
            "clip.vision.block_count", "clip.vision.projection_dim", "clip.vision.attention.layer_norm_epsilon",
            "clip.vision.image_size", "clip.vision.patch_size", "clip.vision.image_mean", "clip.vision.image_std")
VECTORS = ("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "ls1.weight", "ls2.weight", "out_scale.weight",
           "attn_post_norm.weight", "ffn_post_norm.weight")  # per block, each of the encoder's width
FLOATS = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)


class ProjectorError(ModelError):
    """A projector file llama.cpp would refuse or crash on; the message says why."""


@dataclass(frozen=True)
class ProjectorFacts:
    """What the engine needs to know of a projector that passed check_projector."""

    kind: str  # clip.projector_type
    image_size: int  # pixels a side of the (tile) image the encoder sees
    patch_size: int
    embedding_size: int  # width of the image embeddings: the text model's input width
    encoder_width: int
    block_count: int
    merge: int  # patches merged per side into one image token (1: none)
    image_tokens: int  # embeddings per image, or per tile and for the overview when tiled
    tiled: bool  # idefics3: a large image becomes an overview plus tiles, with text between
    non_causal: bool  # gemma3: image embeddings are decoded with non-causal attention
    looked_up_tokens: Tuple[str, ...]  # vocabulary tokens the projector needs as single tokens


def _type_name(expected) -> str:
    return f"ARRAY of {expected[1].name}" if isinstance(expected, tuple) else expected.name


def check_projector(path: Path, embedding_size: int, has_token: Callable[[str], bool]) -> ProjectorFacts:
    """Refuse (ProjectorError) any projector llama.cpp would abort on when loading it with a text
    model of input width `embedding_size` (llama_model_n_embd_inp) whose vocabulary answers
    `has_token(text)` (the text is a single token), or when tokenizing, encoding and decoding an
    image with it. Returns the facts of an accepted one."""
    path = Path(path)

    def fail(problem: str) -> NoReturn:
        raise ProjectorError(f"projector {path}: {problem}")

    if not path.is_file():
        fail("no such file")
    try:  # GGUFReader maps every tensor's data, so a truncated file fails here too
        reader = gguf.GGUFReader(path)
    except Exception as error:  # whatever the gguf package makes of arbitrary bytes
        fail(f"not a readable GGUF file (truncated or corrupt?): {error}")
    fields, tensors = reader.fields, {t.name: t for t in reader.tensors}

    for key, expected in KEYS.items():
        types = tuple(fields[key].types) if key in fields else None
        if types and types != (expected if isinstance(expected, tuple) else (expected,)):
            got = f"ARRAY of {types[-1].name}" if types[0] == V.ARRAY else types[0].name
            fail(f"key {key} is {got}, llama.cpp needs {_type_name(expected)}")

    def value(key: str, default=None):
        return fields[key].contents() if key in fields else default

    audio = value("clip.has_audio_encoder", False) or value("clip.has_gen_audio_encoder", False)
    if not value("clip.has_vision_encoder", False):
        fail("an audio-only projector; images need a vision encoder (clip.has_vision_encoder true)" if audio
             else "not a vision projector (clip.has_vision_encoder is missing or false)")
    if audio:
        fail("also has an audio encoder, which llama.cpp would load too; only image projectors are supported")
    kind = value("clip.projector_type") or value("clip.vision.projector_type")
    if not kind:
        fail("no projector type (clip.projector_type)")
    if kind in MROPE:
        fail(f"projector type {kind!r}: M-RoPE projectors (Qwen2-VL family) are not supported yet")
    if kind in AUDIO:
        fail(f"projector type {kind!r} is an audio projector; images need a vision one")
    if kind not in SUPPORTED:
        fail(f"projector type {kind!r} is not supported (supported: {', '.join(SUPPORTED)})")
    for key in (key for key in REQUIRED if key not in fields):
        fail(f"key {key} is missing, llama.cpp needs it ({_type_name(KEYS[key])})")

    for key in ("clip.vision.image_mean", "clip.vision.image_std"):
        numbers = value(key)
        zero = key.endswith("std") and 0 in numbers[:3]  # llama.cpp divides by the std
        if len(numbers) < 3 or not all(math.isfinite(x) for x in numbers[:3]) or zero:
            fail(f"key {key} must hold 3 finite numbers, one per RGB channel (std not 0), it holds {numbers[:8]}")
    if value("clip.use_gelu", False) and value("clip.use_silu", False):
        fail("keys clip.use_gelu and clip.use_silu are both true; at most one may be")
    for key, what in (("clip.vision.image_grid_pinpoints", "llava-1.6 image tiling"),
                      ("clip.vision.feature_layer", "stacking the encoder's layers (Granite)")):
        if key in fields:
            fail(f"key {key} ({what}) is not supported yet")
    if not math.isfinite(value("clip.vision.attention.layer_norm_epsilon")):
        fail("key clip.vision.attention.layer_norm_epsilon is not a finite number")

    width, heads = value("clip.vision.embedding_length"), value("clip.vision.attention.head_count")
    blocks = value("clip.vision.block_count")
    image_size, patch_size = value("clip.vision.image_size"), value("clip.vision.patch_size")
    for key, number, low, high in (("clip.vision.embedding_length", width, 1, 16384),
                                   ("clip.vision.attention.head_count", heads, 1, 1024),
                                   ("clip.vision.block_count", blocks, 1, 256),
                                   ("clip.vision.image_size", image_size, 1, 8192),
                                   ("clip.vision.patch_size", patch_size, 1, image_size)):
        if not low <= number <= high:
            fail(f"key {key} is {number}, it must be between {low} and {high}")
    if image_size % patch_size:
        fail(f"patch size {patch_size} does not divide image size {image_size}")
    side = image_size // patch_size
    if side > 128:
        fail(f"{side}x{side} patches per image is too many (at most 128x128)")
    head_size = value("clip.vision.attention.head_dim", 0)
    if not head_size:
        if width % heads:
            fail(f"head count {heads} does not divide embedding length {width}")
        head_size = width // heads
    if value("clip.vision.attention.head_count_kv", heads) != heads:
        fail("key clip.vision.attention.head_count_kv differs from head_count (grouped-query attention "
             "in the vision encoder is not supported)")
    inner = heads * head_size

    merge = 1
    if kind == "gemma3":
        merge = value("clip.vision.projector.scale_factor", 4)
    elif kind == "idefics3":
        merge = value("clip.vision.projector.scale_factor", 1)
        if merge < 2:  # the default of 1 hits GGML_ASSERT(scale_factor > 1) at the first encode
            fail("idefics3 needs key clip.vision.projector.scale_factor of at least 2")
        longest = value("clip.vision.preproc_image_size", image_size)
        if not image_size <= longest <= 8192:
            fail(f"key clip.vision.preproc_image_size is {longest}, it must be between {image_size} and 8192")
    if merge < 1 or side % merge:
        fail(f"scale factor {merge} does not divide the {side} patches per side")

    def shape(name: str, *ne: int, required: bool = True, floats: bool = False) -> Optional[Tuple[int, ...]]:
        """Check tensor `name` has ggml shape `ne` (trailing 1s aside) and, with `floats`, is F32 or
        F16 (llama.cpp convolves or transposes it); its shape, or None if absent."""
        t = tensors.get(name)
        if t is None:
            if required:
                fail(f"tensor {name} is missing ({kind} projectors need it)")
            return None
        got = tuple(int(n) for n in t.shape)
        while len(got) > 1 and got[-1] == 1:
            got = got[:-1]
        if ne and got != ne:
            fail(f"tensor {name} has shape {list(got)}, llama.cpp needs {list(ne)}")
        needs = FLOATS[:1] if len(got) == 1 else FLOATS if floats else None  # converters keep 1-D ones F32
        if needs and t.tensor_type not in needs:
            fail(f"tensor {name} is {t.tensor_type.name}, llama.cpp needs {' or '.join(n.name for n in needs)}")
        return got

    shape("v.patch_embd.weight", patch_size, patch_size, 3, width, floats=True)
    shape("v.patch_embd.bias", width, required=False)
    for name in ("v.pre_ln.weight", "v.pre_ln.bias", "v.post_ln.weight", "v.post_ln.bias"):
        shape(name, width, required=False)
    positions = side * side
    if kind == "mlp" and shape("v.class_embd", width, required=False):
        positions += 1
    shape("v.position_embd.weight", width, positions, required=kind == "mlp")

    for block in range(blocks):
        prefix = f"v.blk.{block}."
        for name in VECTORS:
            shape(prefix + name, width, required=False)
        for name in ("attn_q_norm.weight", "attn_k_norm.weight", "ffn_gate_exps.weight"):
            if prefix + name in tensors:
                fail(f"tensor {prefix + name} is not expected in {kind} projectors")
        if kind != "mlp" and prefix + "attn_qkv.weight" in tensors:  # siglip's build_vit takes fused q/k/v
            shape(prefix + "attn_qkv.weight", width, 3 * inner)
            shape(prefix + "attn_qkv.bias", 3 * inner, required=False)
        else:  # missing q/k/v are dereferenced at the first encode
            for name in ("attn_q", "attn_k", "attn_v"):
                shape(prefix + name + ".weight", width, inner)
                shape(prefix + name + ".bias", inner, required=False)
        shape(prefix + "attn_out.weight", inner, width)
        shape(prefix + "attn_out.bias", width, required=False)
        up, down = prefix + "ffn_up.", prefix + "ffn_down."
        up_shape, down_shape = shape(up + "weight"), shape(down + "weight")
        if down_shape[0] == width:  # clip.cpp swaps up and down when down's ne[0] is the width
            up, down, up_shape = down, up, down_shape
        feed_forward = up_shape[-1]
        if feed_forward == width:
            fail(f"ffn width equals embedding length {width} in block {block}: llama.cpp's heuristic for "
                 "old converters would swap ffn_up and ffn_down")
        shape(up + "weight", width, feed_forward)
        shape(down + "weight", feed_forward, width)
        shape(up + "bias", feed_forward, required=False)
        shape(down + "bias", width, required=False)
        if shape(prefix + "ffn_gate.weight", width, feed_forward, required=False):
            shape(prefix + "ffn_gate.bias", feed_forward, required=False)

    if kind == "mlp":
        if "mm.3.weight" in tensors:
            fail("a Yi-style mlp projector (tensor mm.3.weight, llama.cpp's mlp_norm) is not supported")
        hidden = shape("mm.0.weight")[-1]
        shape("mm.0.weight", width, hidden)
        shape("mm.0.bias", hidden)
        projected = shape("mm.2.weight")[-1]  # absent, llama.cpp dereferences NULL at load
        shape("mm.2.weight", hidden, projected)
        shape("mm.2.bias", projected)
    elif kind == "gemma3":
        projected = shape("mm.input_projection.weight")[0]
        shape("mm.input_projection.weight", projected, width, floats=True)
        shape("mm.soft_emb_norm.weight", width)
    else:
        projected = shape("mm.model.fc.weight")[-1]
        shape("mm.model.fc.weight", width * merge * merge, projected)
    if projected != embedding_size:
        fail(f"projects images to width {projected}, but the text model's embedding width is {embedding_size}")

    tokens = LOOKED_UP.get(kind, ())
    for text in tokens:
        if not has_token(text):
            fail(f"the text model's vocabulary has no {text!r} token, which {kind} projectors need "
                 "(llama.cpp would decode token -1 and abort)")
    return ProjectorFacts(kind=kind, image_size=image_size, patch_size=patch_size, embedding_size=projected,
                          encoder_width=width, block_count=blocks, merge=merge,
                          image_tokens=(side // merge) ** 2, tiled=kind == "idefics3",
                          non_causal=kind == "gemma3", looked_up_tokens=tokens)
