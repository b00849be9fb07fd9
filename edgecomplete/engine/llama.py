"""llama.cpp through llama-cpp-python's low-level bindings: model, context, batch, KV cells.

`LlamaModel` owns the native handles of one GGUF model and exposes the few operations the
decode loop needs: tokenize, evaluate a batch of (token, position, sequence) entries, read the
logits of that batch, copy or drop a sequence's KV cells, and set the context's control vector.
`HiddenStates` is a second context on the same weights that records each layer's output.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import llama_cpp
import numpy as np

from ..models import ModelError
from ..sampling import TOKEN_END_OF_GENERATION, TOKEN_SPECIAL, Vocabulary
from ..validation import InvalidRequest
from .kv import sequence_ids
from .native import init_backend

DEFAULT_CONTEXT_LENGTH = 8192
DEFAULT_MAX_SEQUENCES = 16
BATCH_SIZE = 512  # tokens per llama_decode at most (fewer when the context is shorter)
LLAMA_MAX_SEQ = 256  # llama.cpp's limit on sequence ids per context


# Row counts the load-time probe (LlamaModel.rows_exact_in_batch) decodes: each shape of the patched
# build's several-row kernel (groups of 4 rows, the last of 1 to 4), where it hands over to the AMX
# tiles (12, 13), and the most rows; fewer decodes than every count, at every model load.
PROBED_ROWS = (2, 3, 4, 5, 6, 7, 8, 12, 13)

MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS; far more than any CPU here has

# The KV cache's element types edgecomplete offers (ggml type ids; llama_cpp names F16 and Q8_0 only).
KV_CACHE_TYPES = {"bf16": 30, "f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}


def default_kv_cache() -> str:
    """bf16 where llama.cpp computes on the CPU: its CPU flash attention over an f16 cache takes
    other paths for a decode of one row (the span split across threads, from 512 cells on) and for
    64 rows or more (tiles) than for a few rows, so a request would round otherwise next to other
    requests than alone. Over bf16 (or q8_0) it computes every row alone, and sums the values in
    f32 rather than f16. f16, llama.cpp's own default, where this build offloads to a GPU."""
    return "f16" if llama_cpp.llama_supports_gpu_offload() else "bf16"


def default_repack() -> bool:
    """Whether weights are repacked unless asked otherwise: where this build has ggml's AMX kernels
    (an x86 CPU with AMX, llama.cpp built for it with the Makefile's patch). They take repacked
    weights, decode faster, and multiply a batch of rows exactly as each row alone (the load-time
    probe checks: 16 rows on both models on the build machine), so a step verifies more drafts for
    less. Elsewhere not: llama.cpp's other repacked kernels multiply 4 rows at a time and round
    them otherwise than one row alone. The CPU's features are compiled in (-march=native), so the
    build's feature list is the CPU's."""
    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode()


def check_context_options(context_length: Optional[int], max_sequences: int, threads: Optional[int] = None,
                          kv_cache: Optional[str] = None, repack: Optional[bool] = None) -> None:
    """Refuse what llama.cpp would abort on (it asserts rather than fails). Its batch is at most
    the context length (causal attention needs no more), and the batch must hold one logits row
    per sequence id: so the context must be at least as long as there are sequence ids. Threads
    are bounded too (thousands of them bring the machine to a halt before anything fails)."""
    def is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if threads is not None and (not is_int(threads) or not 1 <= threads <= MAX_THREADS):
        raise InvalidRequest("threads", f"must be an integer in [1, {MAX_THREADS}] (this machine has "
                             f"{default_threads()} CPUs), got {threads!r}")
    if kv_cache is not None and (not isinstance(kv_cache, str) or kv_cache not in KV_CACHE_TYPES):
        raise InvalidRequest("kv_cache", f"must be one of {', '.join(KV_CACHE_TYPES)} (or None: "
                             f"{default_kv_cache()} here), got {kv_cache!r}")
    if repack is not None and not isinstance(repack, bool):
        raise InvalidRequest("repack", f"must be True or False (or None: {default_repack()} here), got {repack!r}")

    most = LLAMA_MAX_SEQ - sequence_ids(0)
    if not is_int(max_sequences) or not 1 <= max_sequences <= most:
        raise InvalidRequest("max_sequences", f"must be an integer in [1, {most}], got {max_sequences!r}")
    least = sequence_ids(max_sequences)
    if context_length is not None and (not is_int(context_length) or context_length < least):
        raise InvalidRequest(
            "context_length",
            f"must be an integer >= {least}, got {context_length!r} (llama.cpp's batch, at most the "
            f"context length, must hold a logits row per sequence: max_sequences {max_sequences} "
            f"+ {sequence_ids(0)} the engine keeps)",
        )


def default_threads() -> int:
    """Threads for llama.cpp: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BatchEntry:
    token: int
    position: int
    sequence: int
    logits: bool


@dataclass(frozen=True)
class BatchProbe:
    """LlamaModel.rows_exact_in_batch: the most rows of one sequence a decode computes as alone,
    and the seconds a decode of n rows took there (1, and each count it tried up to `rows`), for
    DraftPolicy's costs."""

    rows: int
    seconds: Dict[int, float]


class LlamaModel:
    """One GGUF model and one llama.cpp context over it (unified KV cache shared by sequences).

    Numerics follow the context settings: flash attention on or off changes logits in the last
    digits, enough to flip a near-tie between greedy candidates.
    """

    def __init__(
        self,
        path: Path,
        *,
        context_length: Optional[int] = None,
        threads: Optional[int] = None,
        max_sequences: int = DEFAULT_MAX_SEQUENCES,
        flash_attention: Optional[bool] = None,
        kv_cache: Optional[str] = None,
        repack: Optional[bool] = None,
    ):
        check_context_options(context_length, max_sequences, threads, kv_cache, repack)
        init_backend()
        self.path = Path(path)
        model_params = llama_cpp.llama_model_default_params()
        model_params.use_extra_bufts = default_repack() if repack is None else repack  # see `Client`'s repack
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), model_params)
        if not self._model:
            raise ModelError(f"llama.cpp could not load {self.path} (not a GGUF model it supports)")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.trained_context_length = llama_cpp.llama_model_n_ctx_train(self._model)
        self.layers = llama_cpp.llama_model_n_layer(self._model)
        self.embedding_size = llama_cpp.llama_model_n_embd(self._model)
        self.input_embedding_size = llama_cpp.llama_model_n_embd_inp(self._model)  # what a projector gives
        self.flash_attention = flash_attention
        self.kv_cache = kv_cache or default_kv_cache()
        if context_length is not None and context_length > self.trained_context_length:
            llama_cpp.llama_model_free(self._model)
            raise InvalidRequest(
                "context_length",
                f"must be at most {self.trained_context_length}, the context {self.path.name} was trained "
                f"on, got {context_length}",
            )
        wanted = context_length or min(DEFAULT_CONTEXT_LENGTH, self.trained_context_length)
        self.max_sequences = max_sequences
        self.threads = threads or default_threads()

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = wanted
        params.n_batch = params.n_ubatch = min(BATCH_SIZE, wanted)
        params.n_seq_max = sequence_ids(max_sequences)
        params.n_threads = self.threads
        params.n_threads_batch = self.threads
        params.kv_unified = True  # candidates share the prompt's cells
        params.no_perf = True
        # None leaves the choice to llama.cpp (on where the backend supports it).
        params.flash_attn_type = {None: -1, False: 0, True: 1}[flash_attention]
        params.type_k = params.type_v = KV_CACHE_TYPES[self.kv_cache]
        self._context = llama_cpp.llama_init_from_model(self._model, params)
        if not self._context:
            llama_cpp.llama_model_free(self._model)
            raise ModelError(f"llama.cpp could not create a context of {wanted} tokens for {self.path}")
        # llama.cpp rounds its cache up to a multiple of 256 cells; the context is what was asked.
        self.context_length = min(wanted, llama_cpp.llama_n_ctx(self._context))
        # Tokens per decode at most: llama.cpp asserts on a larger batch.
        self.batch_size = llama_cpp.llama_n_batch(self._context)
        self._memory = llama_cpp.llama_get_memory(self._context)
        self._batch = llama_cpp.llama_batch_init(self.batch_size, 0, 1)
        self._embedding_batch = None  # made for the first image

        self.bos = llama_cpp.llama_vocab_bos(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.vocabulary = self._read_vocabulary()

    # ---- vocabulary ---------------------------------------------------------------------------

    def _piece(self, token: int, special: bool, buffer) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, special)
        if n < 0:  # buffer too small: -n is the size needed
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, special)
        return buffer.raw[:n]

    def _read_vocabulary(self) -> Vocabulary:
        vocabulary = Vocabulary(self.vocab_size)
        buffer = ctypes.create_string_buffer(256)
        for token in range(self.vocab_size):
            text = self._piece(token, False, buffer)
            raw = self._piece(token, True, buffer)
            flags = 0
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                flags |= TOKEN_END_OF_GENERATION
            if raw and not text:
                flags |= TOKEN_SPECIAL
            vocabulary.set_token(token, text, raw, flags)
        vocabulary.finalize()
        return vocabulary

    def end_of_generation_tokens(self) -> List[int]:
        """The tokens that end a generation (EOS, end of turn, ...)."""
        return [t for t in range(self.vocab_size) if llama_cpp.llama_vocab_is_eog(self._vocab, t)]

    def chat_template(self, fallback: Optional[str] = None) -> Optional[str]:
        """The GGUF's chat template; else `fallback` (a llama.cpp built-in name); None for a
        model that has none (a base model)."""
        template = llama_cpp.llama_model_chat_template(self._model, None)
        return template.decode("utf-8") if template else fallback

    def apply_chat_template(self, messages: Sequence[Tuple[str, str]], template: str,
                            add_generation_prompt: bool = True) -> str:
        """Render (role, content) messages with llama.cpp's template support (its built-in
        templates, recognised also from a GGUF's Jinja source)."""
        keep = [(role.encode("utf-8"), content.encode("utf-8")) for role, content in messages]
        chat = (llama_cpp.llama_chat_message * max(len(keep), 1))()
        for i, (role, content) in enumerate(keep):
            chat[i].role, chat[i].content = role, content
        size = 2 * sum(len(r) + len(c) for r, c in keep) + 1024
        for _ in range(2):
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_chat_apply_template(template.encode("utf-8"), chat, len(keep),
                                                    add_generation_prompt, buffer, size)
            if n < 0:
                raise ModelError(f"llama.cpp does not support this chat template: {template[:60]!r}")
            if n <= size:
                return buffer.raw[:n].decode("utf-8", "replace")
            size = n
        raise ModelError("chat template output did not fit")

    def has_single_token(self, text: str) -> bool:
        """Whether `text` is one token of the vocabulary (a projector's marker tokens must be)."""
        return len(self.tokenize(text)) == 1

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens` (special tokens rendered)."""
        return b"".join(self.vocabulary.piece(t, raw=True) for t in tokens).decode("utf-8", "replace")

    def tokenize(self, text: str, parse_special: bool = True) -> List[int]:
        """Token ids of `text`, without BOS/EOS; control-token text such as <|im_start|> is parsed
        as the control token (as llama-server does) unless parse_special is False."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, parse_special)
        if n < 0:
            capacity = -n
            tokens = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, parse_special)
        if n < 0:
            raise ModelError(f"llama.cpp could not tokenize a text of {len(data)} bytes")
        return list(tokens[:n])

    # ---- evaluation ---------------------------------------------------------------------------

    def decode(self, entries: Sequence[BatchEntry]) -> int:
        """Evaluate one batch; returns the address of its logits: one float32 row of vocab_size
        per entry that asked for logits, in batch order. Valid until the next decode."""
        if len(entries) > self.batch_size:
            raise ValueError(f"batch of {len(entries)} entries, at most {self.batch_size}")
        batch = self._batch
        for i, entry in enumerate(entries):
            batch.token[i] = entry.token
            batch.pos[i] = entry.position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = entry.sequence
            batch.logits[i] = entry.logits
        batch.n_tokens = len(entries)
        status = llama_cpp.llama_decode(self._context, batch)
        if status != 0:
            raise RuntimeError(
                f"llama_decode failed with status {status}"
                + (" (no room left in the context)" if status == 1 else "")
            )
        return ctypes.cast(llama_cpp.llama_get_logits(self._context), ctypes.c_void_p).value or 0

    def rows_exact_in_batch(self, most: int) -> BatchProbe:
        """The largest number of rows (at most `most`) that one sequence can decode in one batch
        and get, bit for bit, the logits that decoding them one at a time gives (and so for each
        smaller count tried), and what a decode of one row and of each such count took. On some
        models and CPUs a batch of several rows takes other kernels (llama.cpp's repacked weights
        multiply 4 rows at a time, e.g. Q4_K on AVX2; ggml's tiled K-quant products, 8 rows or
        more, where GGML_CPU_TILED_MM is on) whose rounding differs, and the patched build takes
        one kernel for 2 to 12 rows of Q4_1 or Q8_0 and the AMX tiles above: the counts of
        PROBED_ROWS (and `most`) are tried in turn, up to the first that rounds otherwise.
        Speculation decodes at most this many rows in a step, so that its text is the one without
        it. Call before anything else uses the context: it decodes on sequence 0 and empties it."""
        tokens = [t for t in self.tokenize("one two three four five six seven eight nine ten eleven twelve "
                                           "thirteen fourteen fifteen sixteen seventeen eighteen nineteen "
                                           "twenty twenty-one twenty-two twenty-three twenty-four",
                                           parse_special=False)]
        start = 4
        most = min(most, self.batch_size, self.context_length - start)  # a small context: fewer
        probe = tokens[start:start + most]
        most = len(probe)
        if most < 2:
            return BatchProbe(1, {})
        row = 4 * self.vocab_size

        def timed(entries: List[BatchEntry]) -> Tuple[bytes, float]:
            started = time.perf_counter()
            address = self.decode(entries)
            seconds = time.perf_counter() - started
            return ctypes.string_at(address, row * len(entries)), seconds

        try:
            self.decode([BatchEntry(t, p, 0, False) for p, t in enumerate(tokens[:start])])
            alone, one = zip(*(timed([BatchEntry(t, start + i, 0, True)]) for i, t in enumerate(probe)))
            alone = b"".join(alone)
            seconds = {1: statistics.median(one[len(one) // 2:])}  # the later ones: warm caches
            exact = 1
            for count in sorted({*PROBED_ROWS, most}):
                if count > most:
                    break
                self.truncate_sequence(0, start)
                batched, took = timed([BatchEntry(t, start + i, 0, True) for i, t in enumerate(probe[:count])])
                if batched != alone[: row * count]:
                    break
                exact = count
                seconds[count] = took
            return BatchProbe(exact, seconds)
        finally:
            llama_cpp.llama_memory_clear(self._memory, True)

    def decode_embeddings(self, embeddings: np.ndarray, first_position: int, sequence: int,
                          logits_last: bool, non_causal: bool = False) -> int:
        """Evaluate rows of input embeddings (an image's, from its projector) at positions from
        `first_position` on `sequence`, in batches of at most batch_size rows; with
        `logits_last`, the last row's logits (the address of one row, valid until the next
        decode), else 0. `non_causal`: the rows attend to each other both ways (Gemma 3's
        images), as llama.cpp's own helper decodes them."""
        rows, width = embeddings.shape
        if width != self.input_embedding_size:
            raise ValueError(f"embeddings of width {width}, the model takes {self.input_embedding_size}")
        if self._embedding_batch is None:
            self._embedding_batch = llama_cpp.llama_batch_init(self.batch_size, self.input_embedding_size, 1)
        batch = self._embedding_batch
        data = np.ascontiguousarray(embeddings, dtype=np.float32)
        if non_causal:
            llama_cpp.llama_set_causal_attn(self._context, False)
        try:
            for start in range(0, rows, self.batch_size):
                count = min(self.batch_size, rows - start)
                ctypes.memmove(batch.embd, data[start:start + count].ctypes.data, count * width * 4)
                for i in range(count):
                    batch.pos[i] = first_position + start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = sequence
                    batch.logits[i] = logits_last and start + i == rows - 1
                batch.n_tokens = count
                status = llama_cpp.llama_decode(self._context, batch)
                if status != 0:
                    raise RuntimeError(f"llama_decode of image embeddings failed with status {status}")
        finally:
            if non_causal:
                llama_cpp.llama_set_causal_attn(self._context, True)
        if not logits_last:
            return 0
        return ctypes.cast(llama_cpp.llama_get_logits(self._context), ctypes.c_void_p).value or 0

    def copy_sequence(self, source: int, destination: int, end: int = -1) -> None:
        """Let `destination` share the KV cells of `source` at positions below `end` (-1: all);
        no data is copied."""
        llama_cpp.llama_memory_seq_cp(self._memory, source, destination, 0 if end >= 0 else -1, end)

    def drop_sequence(self, sequence: int) -> None:
        """Free the KV cells of `sequence` (cells shared with another sequence stay)."""
        llama_cpp.llama_memory_seq_rm(self._memory, sequence, -1, -1)

    def move_positions(self, source: int, destination: int, start: int) -> None:
        """Hand the cells of `source` at positions from `start` on to `destination` (they stay
        occupied, where they are)."""
        llama_cpp.llama_memory_seq_cp(self._memory, source, destination, start, -1)
        llama_cpp.llama_memory_seq_rm(self._memory, source, start, -1)

    def truncate_sequence(self, sequence: int, end: int) -> None:
        """Free the cells of `sequence` at positions from `end` on (before a compaction only: it
        leaves gaps)."""
        llama_cpp.llama_memory_seq_rm(self._memory, sequence, end, -1)

    @property
    def has_sliding_window(self) -> bool:
        """Whether some layers attend over a sliding window (their cells are overwritten)."""
        return llama_cpp.llama_model_n_swa(self._model) > 0

    def compact(self, keep: Sequence[int]) -> None:
        """Empty the KV cache but for the sequences `keep` (none of them live), which are saved
        and restored from the first cell on: the cache holds no gaps afterwards."""
        saved = []
        for sequence in keep:
            size = llama_cpp.llama_state_seq_get_size(self._context, sequence)
            data = (ctypes.c_uint8 * size)()
            saved.append((sequence, data, llama_cpp.llama_state_seq_get_data(self._context, data, size, sequence)))
        llama_cpp.llama_memory_clear(self._memory, True)
        for sequence, data, size in saved:
            if llama_cpp.llama_state_seq_set_data(self._context, data, size, sequence) != size:
                raise RuntimeError(f"llama.cpp could not restore the cells of sequence {sequence}")

    # ---- steering -----------------------------------------------------------------------------

    def set_control_vector(self, directions: Optional[np.ndarray], first_layer: int = 0, last_layer: int = 0) -> None:
        """Add `directions[k]` to the output of layer k, for k in [first_layer, last_layer], to
        every row this context decodes from now on (None: no control vector). `directions` has
        one row per layer; row 0 is never applied (llama.cpp's layout starts at layer 1)."""
        _set_control_vector(self._context, self, directions, first_layer, last_layer)

    def holds_cells(self, sequence: int) -> bool:
        """Whether any KV cell belongs to `sequence`."""
        return llama_cpp.llama_memory_seq_pos_max(self._memory, sequence) >= 0

    def close(self) -> None:
        if getattr(self, "_context", None):
            llama_cpp.llama_batch_free(self._batch)
            if self._embedding_batch is not None:
                llama_cpp.llama_batch_free(self._embedding_batch)
            llama_cpp.llama_free(self._context)
            llama_cpp.llama_model_free(self._model)
            self._context = None
            self._model = None

    def __del__(self):
        self.close()


def _set_control_vector(context, model: LlamaModel, directions: Optional[np.ndarray], first_layer: int,
                        last_layer: int) -> None:
    if directions is None:
        status = llama_cpp.llama_set_adapter_cvec(context, None, 0, model.embedding_size, 0, 0)
    else:
        data = np.ascontiguousarray(directions[1:], dtype=np.float32)
        if data.shape != (model.layers - 1, model.embedding_size) or not 1 <= first_layer <= last_layer < model.layers:
            raise ValueError(f"control vector of shape {directions.shape} over layers {first_layer}..{last_layer}")
        pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        status = llama_cpp.llama_set_adapter_cvec(context, pointer, data.size, model.embedding_size,
                                                  first_layer, last_layer)
    if status != 0:
        raise RuntimeError(f"llama.cpp refused the control vector (status {status})")


# ---- hidden states -------------------------------------------------------------------------------

class _TensorHead(ctypes.Structure):
    """The first fields of ggml's `struct ggml_tensor` (ggml.h): its type and shape."""

    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4)]


_GGML_F32 = 0


def _ggml_base() -> ctypes.CDLL:
    """libggml-base, already loaded by libllama: the tensor reads llama-cpp-python does not bind."""
    library = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    library.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    library.ggml_backend_tensor_get.restype = None
    library.ggml_get_name.argtypes = [ctypes.c_void_p]
    library.ggml_get_name.restype = ctypes.c_char_p
    return library


class HiddenStates:
    """A context of its own on a model's weights (no control vector, one sequence) whose decode
    records the output of every layer (llama.cpp's graph nodes `l_out-<k>`, the residual stream
    after layer k) through llama.cpp's evaluation callback. Run it on the llama thread."""

    def __init__(self, model: LlamaModel, max_tokens: int = 512):
        self.model = model
        self.max_tokens = max_tokens
        self._ggml = _ggml_base()
        self._layers: dict = {}
        self._tokens = 0
        # Kept alive as long as the context: llama.cpp calls it from its decode.
        self._callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = max_tokens  # a text in one ubatch: all its rows at once
        params.n_seq_max = 1
        params.n_threads = params.n_threads_batch = model.threads
        params.no_perf = True
        params.flash_attn_type = {None: -1, False: 0, True: 1}[model.flash_attention]
        params.type_k = params.type_v = KV_CACHE_TYPES[model.kv_cache]
        params.cb_eval = self._callback
        self._context = llama_cpp.llama_init_from_model(model._model, params)
        if not self._context:
            raise ModelError(f"llama.cpp could not create a capture context for {model.path}")
        self._memory = llama_cpp.llama_get_memory(self._context)
        self._batch = llama_cpp.llama_batch_init(max_tokens, 0, 1)

    def _on_tensor(self, tensor, ask, user_data) -> bool:
        try:
            name = self._ggml.ggml_get_name(tensor) or b""
            if not name.startswith(b"l_out-"):
                return not ask  # not wanted; never stop the graph
            if ask:
                return True
            head = _TensorHead.from_address(tensor)
            if head.type == _GGML_F32 and head.ne[1] == self._tokens:
                rows = np.empty((head.ne[1], head.ne[0]), dtype=np.float32)
                self._ggml.ggml_backend_tensor_get(tensor, rows.ctypes.data, 0, rows.nbytes)
                self._layers[int(name[6:])] = rows
            return True
        except Exception:  # an exception must not cross into llama.cpp: this decode records less
            return True

    def layers(self, tokens: Sequence[int]) -> np.ndarray:
        """The output of every layer for every token of `tokens`, decoded alone from position 0:
        shape (layers, tokens, embedding size)."""
        if not 0 < len(tokens) <= self.max_tokens:
            raise ValueError(f"{len(tokens)} tokens; 1 to {self.max_tokens} can be captured")
        llama_cpp.llama_memory_clear(self._memory, True)
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = True  # so the last layer keeps every row too
        batch.n_tokens = len(tokens)
        self._layers, self._tokens = {}, len(tokens)
        if llama_cpp.llama_decode(self._context, batch) != 0:
            raise RuntimeError("llama_decode failed in the capture context")
        if sorted(self._layers) != list(range(self.model.layers)):
            raise ModelError(f"{self.model.path.name}: llama.cpp showed layer outputs {sorted(self._layers)}, "
                             f"not all of 0..{self.model.layers - 1}")
        return np.stack([self._layers[k] for k in range(self.model.layers)])

    def set_control_vector(self, directions: Optional[np.ndarray], first_layer: int = 0, last_layer: int = 0) -> None:
        """As LlamaModel.set_control_vector, on this context (its outputs then include it)."""
        _set_control_vector(self._context, self.model, directions, first_layer, last_layer)

    def close(self) -> None:
        if getattr(self, "_context", None):
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._context)
            self._context = None

    def __del__(self):
        self.close()
