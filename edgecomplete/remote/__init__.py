"""Remote engines behind the seam: the same API, CLI and terminal UI on another machine's engine.

`remote_backend("http://gpu-box:8000", "openai")` is a Backend like the local one:
- `aleph`: the Aleph Alpha HTTP API (another `edgecomplete serve`, or the Aleph Alpha API itself),
- `openai`: an OpenAI-compatible server's /v1/completions (vLLM, llama-server's /v1, ...),
- `llama-server`: llama.cpp's server through its native /completion.
What each does with each request field: support.py (exact, computed here, or refused before any
request). Transport, retries and errors: http.py.
"""

from __future__ import annotations

from typing import Optional

from ..validation import InvalidRequest
from .http import RemoteError
from .support import BACKENDS


def remote_backend(host: str, backend: str = "aleph", token: Optional[str] = None, verify_ssl: bool = True,
                   timeout: float = 305.0):
    """The Backend that speaks `backend`'s protocol to `host`."""
    if backend == "aleph":
        from .aleph import AlephBackend as kind
    elif backend == "openai":
        from .openai import OpenAIBackend as kind
    elif backend == "llama-server":
        from .llama_server import LlamaServerBackend as kind
    else:
        raise InvalidRequest("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return kind(host, token=token, verify_ssl=verify_ssl, timeout=timeout)


__all__ = ["BACKENDS", "RemoteError", "remote_backend"]
