"""A model's vision projector (an mmproj GGUF) through llama.cpp's libmtmd.

An image becomes the parts a prompt holds in its place: text tokens (some projectors wrap an
image in marker tokens, such as Gemma 3's <start_of_image>) and image chunks of a fixed number of
positions. A chunk is encoded by the projector into one embedding per position, which the engine
decodes in place of token embeddings (LlamaModel.decode_embeddings). Splitting an image into
parts is preprocessing only (mtmd_tokenize reads the projector's settings, no llama.cpp
context; mtmd_tokenize takes the projector as const), so it runs on the caller's thread; encoding
runs on the llama thread, from the engine's step, and only for images no prefix slot already
holds.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import List, Union

import numpy as np
from llama_cpp import mtmd_cpp

from ..images import PreparedImage
from .llama import LlamaModel
from .projector_file import ProjectorError, ProjectorFacts, check_projector

_TEXT, _IMAGE = 0, 1


class ImageChunk:
    """One image chunk of a prompt: `positions` embeddings to encode, keyed on the image."""

    def __init__(self, chunk, key: str, positions: int, non_causal: bool):
        self._chunk = chunk  # owned: a copy of the chunk mtmd_tokenize made
        self.key, self.positions, self.non_causal = key, positions, non_causal

    def close(self) -> None:
        if self._chunk:
            mtmd_cpp.mtmd_input_chunk_free(self._chunk)
            self._chunk = None

    def __del__(self):
        self.close()

    def __repr__(self) -> str:
        return f"ImageChunk({self.positions} positions, {self.key[:12]})"


ImagePart = Union[List[int], ImageChunk]


class Projector:
    """The mmproj of one model. Create and use it on the llama thread but for `parts`."""

    def __init__(self, model: LlamaModel, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # `parts` on callers' threads, never once it is closed
        self.facts: ProjectorFacts = check_projector(self.path, model.input_embedding_size, model.has_single_token)
        params = mtmd_cpp.mtmd_context_params_default()
        params.n_threads = model.threads
        params.print_timings = False
        params.flash_attn_type = {None: -1, False: 0, True: 1}[model.flash_attention]
        self._context = mtmd_cpp.mtmd_init_from_file(str(self.path).encode(), model._model, params)
        if not self._context:
            raise ProjectorError(f"projector {self.path}: llama.cpp could not load it for {model.path.name} "
                                 "(see the log with --verbose); is it the projector made for this model?")
        if not mtmd_cpp.mtmd_support_vision(self._context) or mtmd_cpp.mtmd_decode_use_mrope(self._context):
            self.close()
            raise ProjectorError(f"projector {self.path}: not a vision projector edgecomplete can run "
                                 "(audio-only, or M-RoPE positions)")
        self.embedding_size = model.input_embedding_size

    def parts(self, image: PreparedImage) -> List[ImagePart]:
        """What stands for `image` in a prompt, in order: text tokens and image chunks."""
        with self._lock:
            if not self._context:
                raise RuntimeError(f"projector {self.path} is closed (its model was unloaded)")
            return self._parts(image)

    def _parts(self, image: PreparedImage) -> List[ImagePart]:
        data = (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
        bitmap = mtmd_cpp.mtmd_bitmap_init(image.width, image.height, data)
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            mtmd_cpp.mtmd_bitmap_set_id(bitmap, image.key.encode())
            part = mtmd_cpp.mtmd_input_part(None, bitmap)
            parts = (ctypes.POINTER(mtmd_cpp.mtmd_input_part) * 1)(ctypes.pointer(part))
            status = mtmd_cpp.mtmd_tokenize_from_parts(self._context, chunks, parts, 1, False)
            if status != 0:
                raise ProjectorError(f"projector {self.path}: libmtmd could not preprocess a {image.width}x"
                                     f"{image.height} image (status {status})")
            found: List[ImagePart] = []
            for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
                chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
                kind = mtmd_cpp.mtmd_input_chunk_get_type(chunk)
                if kind == _TEXT:
                    count = ctypes.c_size_t()
                    tokens = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                    found.append([int(tokens[t]) for t in range(count.value)])
                elif kind == _IMAGE:
                    positions = mtmd_cpp.mtmd_input_chunk_get_n_pos(chunk)
                    if positions != mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk):
                        raise ProjectorError(f"projector {self.path}: an image chunk of other positions than "
                                             "tokens (M-RoPE) is not supported")
                    found.append(ImageChunk(mtmd_cpp.mtmd_input_chunk_copy(chunk), image.key, positions,
                                            bool(mtmd_cpp.mtmd_decode_use_non_causal(self._context, chunk))))
                else:
                    raise ProjectorError(f"projector {self.path}: gave a chunk of type {kind} for an image")
            return found
        finally:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            mtmd_cpp.mtmd_bitmap_free(bitmap)

    def encode(self, chunk: ImageChunk) -> np.ndarray:
        """The chunk's embeddings, (positions, embedding size) float32. On the llama thread."""
        if mtmd_cpp.mtmd_encode_chunk(self._context, chunk._chunk) != 0:
            raise RuntimeError(f"projector {self.path}: encoding an image failed")
        pointer = mtmd_cpp.mtmd_get_output_embd(self._context)
        return np.ctypeslib.as_array(pointer, shape=(chunk.positions, self.embedding_size)).copy()

    def close(self) -> None:
        if getattr(self, "_context", None):
            with self._lock:
                mtmd_cpp.mtmd_free(self._context)
                self._context = None

    def __del__(self):
        self.close()
