"""The in-process engine: llama.cpp under one decode loop per model.

Rooms: `local.py` (LocalBackend, the seam's implementation), `engine.py` (one model's decode
loop), `events.py` (what it reports), `jobs.py` (a request in flight and its outbox),
`thread.py` (the llama thread), `kv.py` (KV cells, sequence ids, prefix slots), `text.py`
(which text is final), `llama.py` (the llama.cpp model and context), `native.py` (llama.cpp's
backend, log and GGUF metadata).

Names load on first use, so that the core's pure modules (validation calls kv.cells_needed)
can import a room without loading llama.cpp.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LocalBackend": ".local",
    "Engine": ".engine",
    "LlamaModel": ".llama",
    "check_context_options": ".llama",
    "NATIVE_LOG": ".native",
    "read_metadata": ".native",
    "on_llama_thread": ".thread",
    "CandidatesDropped": ".events",
    "Decoded": ".events",
    "EngineEvent": ".events",
    "PromptEcho": ".events",
    "SequenceFinished": ".events",
    "TokenEntry": ".events",
    "TokenSampled": ".events",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
