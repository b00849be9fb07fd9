"""llama.cpp, process-wide: backend initialisation, its log routed to Python logging, and reading
a GGUF's metadata without loading its weights."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Dict

import llama_cpp
from llama_cpp import mtmd_cpp

from ..models import ModelError

# ggml's CPU backend multiplies K-quant weights (Q4_K, Q6_K, ...) by a batch of 8 rows or more in
# tiles (GGML_CPU_TILED_MM, on by default), rounding otherwise than its kernel for fewer rows: a
# step of 8 or more rows then computes every row but the first otherwise than alone, so
# speculation could verify at most 7 rows on a model with such weights (gemma-3-270m) and a
# request next to 7 others would part from its run alone. Off, every batch size computes a row as
# it would alone; a decode of up to 16 rows is as fast (here: faster), and long prompts of K-quant
# models are slower (gemma-3-270m, 435 tokens: 1080 vs 790 ms here). ggml reads the variable once,
# at its first matrix product in the process: set here, before edgecomplete computes anything.
# A value the user set is kept (GGML_CPU_TILED_MM=1: llama.cpp's default; the engine's probe,
# LlamaModel.rows_exact_in_batch, then finds fewer exact rows and speculation verifies fewer).
TILED_MATMUL_VARIABLE = "GGML_CPU_TILED_MM"
os.environ.setdefault(TILED_MATMUL_VARIABLE, "0")

_backend_lock = threading.Lock()
_backend_ready = False

# llama.cpp's and ggml's log lines go to this logger, which has a NullHandler: they show only
# where the application asks (logging configuration, or `edgecomplete ... --verbose`).
NATIVE_LOG = "edgecomplete.llama_cpp"
native_log = logging.getLogger(NATIVE_LOG)
native_log.addHandler(logging.NullHandler())
# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error; 5 continues the previous line. (llama-cpp-
# python's own callback still maps the older enum, so it printed warnings as errors.)
_LOG_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_last_log_level = logging.DEBUG


@llama_cpp.llama_log_callback
def _log_native(level: int, text: bytes, user_data) -> None:
    global _last_log_level
    level = _LOG_LEVELS.get(level, _last_log_level if level == 5 else logging.ERROR)
    _last_log_level = level
    if native_log.isEnabledFor(level):
        message = text.decode("utf-8", "replace").rstrip("\n")
        if message:
            native_log.log(level, message)


def init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            # Replaces llama-cpp-python's callback (set when llama_cpp was imported); the
            # module-level _log_native keeps the ctypes callback alive.
            llama_cpp.llama_log_set(_log_native, ctypes.c_void_p(0))
            mtmd_cpp.mtmd_log_set(_log_native, ctypes.c_void_p(0))  # libmtmd (projectors) logs on its own
            llama_cpp.llama_backend_init()
            _backend_ready = True


def read_metadata(path: Path) -> Dict[str, str]:
    """The key-value metadata of a GGUF file (general.name, <arch>.context_length,
    tokenizer.chat_template, ...), read by llama.cpp without loading the weights; the
    vocabulary arrays (tokenizer.ggml.*) are left out."""
    init_backend()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ModelError(f"llama.cpp could not read {path} (not a GGUF model it supports)")
    try:
        metadata = {}
        for i in range(llama_cpp.llama_model_meta_count(model)):
            key = _meta_string(lambda buffer, size: llama_cpp.llama_model_meta_key_by_index(model, i, buffer, size))
            if not key.startswith("tokenizer.ggml."):
                metadata[key] = _meta_string(
                    lambda buffer, size: llama_cpp.llama_model_meta_val_str_by_index(model, i, buffer, size))
        return metadata
    finally:
        llama_cpp.llama_model_free(model)


def _meta_string(read) -> str:
    """A metadata string: `read(buffer, size)` returns its length, which may exceed the buffer."""
    size = 256
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = read(buffer, size)
        if n < size:
            return buffer.value.decode("utf-8", "replace") if n >= 0 else ""
        size = n + 1
