"""The faces: `Client` (synchronous) and `AsyncClient`, with the Aleph Alpha client's signatures.

Both are thin: resolve the model, plan the request, run the engine's loop, fold or stream the
items. Connection options of the Aleph Alpha client (token, host, retries, ...) are accepted and
ignored, so existing code runs by changing the import.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from . import models
from .completion import CompletionRequest, CompletionResponse, CompletionResponseStreamItem
from .engine import Engine, LlamaModel
from .plan import plan_completion
from .validation import check_request
from .stream import fold, stream_items


class Client:
    """Runs completions on local GGUF models. Each model is loaded once, on first use.

    `model` arguments are registered model names (`edgecomplete models list`) or paths to .gguf
    files. A registered model that is not on this machine yet raises ModelNotPulledError, which
    names the command that fetches it.

    context_length: KV-cache size per model (default: the model's trained context, at most 8192).
    threads: CPU threads for llama.cpp (default: every CPU this process may use).
    max_sequences: most candidates (max(n, best_of)) one request may ask for.
    flash_attention: use llama.cpp's flash attention (None: llama.cpp decides, which turns it on
        for the CPU backend; it is faster and rounds slightly differently).
    """

    def __init__(
        self,
        token: Optional[str] = None,
        host: Optional[str] = None,
        hosting: Optional[str] = None,
        request_timeout_seconds: int = 305,
        total_retries: int = 8,
        nice: bool = False,
        verify_ssl: bool = True,
        tags: Optional[Sequence[str]] = None,
        pool_size: int = 10,
        *,
        context_length: Optional[int] = None,
        threads: Optional[int] = None,
        max_sequences: int = 16,
        flash_attention: Optional[bool] = None,
    ) -> None:
        self._flash_attention = flash_attention
        self._context_length = context_length
        self._threads = threads
        self._max_sequences = max_sequences
        self._engines: Dict[str, Engine] = {}
        self._engines_lock = threading.Lock()

    def engine(self, model: str) -> Engine:
        """The engine of `model`, loading the model on first use."""
        with self._engines_lock:
            if model not in self._engines:
                path = models.resolve(model)
                llama = LlamaModel(
                    path,
                    context_length=self._context_length,
                    threads=self._threads,
                    max_sequences=self._max_sequences,
                    flash_attention=self._flash_attention,
                )
                version = model if not models.is_gguf_path(model) else Path(path).stem
                self._engines[model] = Engine(llama, model_version=version)
            return self._engines[model]

    def complete_with_streaming(
        self, request: CompletionRequest, model: str
    ) -> Iterator[CompletionResponseStreamItem]:
        """The completion as stream items, for synchronous code. Validation errors are raised
        here, before the first item; leaving the loop early stops the generation."""
        check_request(request)  # before loading anything; plan_completion adds the model's rules
        engine = self.engine(model)
        plan = plan_completion(request, engine.model)
        return stream_items(plan, engine.generate(plan), engine.model_version, engine.model.vocabulary)

    def complete(self, request: CompletionRequest, model: str) -> CompletionResponse:
        """Generate the completion(s) of `request` on `model`."""
        return fold(self.complete_with_streaming(request, model))

    def models(self) -> List[Mapping[str, Any]]:
        """Registered models and whether each is installed."""
        return [
            {
                "name": status.manifest.name,
                "description": status.manifest.description,
                "context_length": status.manifest.context_length,
                "license": status.manifest.license,
                "installed": status.installed,
                "path": str(status.path),
            }
            for status in models.list_models()
        ]

    def close(self) -> None:
        """Free every loaded model."""
        with self._engines_lock:
            for engine in self._engines.values():
                engine.model.close()
            self._engines.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class AsyncClient:
    """The asynchronous face: `async with AsyncClient() as client: await client.complete(...)`.

    Generation runs in a worker thread, never on the event loop.
    """

    def __init__(self, token: Optional[str] = None, host: Optional[str] = None, **options: Any) -> None:
        aleph_options = {"hosting", "request_timeout_seconds", "total_retries", "nice", "verify_ssl",
                         "tags", "pool_size", "context_length", "threads", "max_sequences", "flash_attention"}
        unknown = sorted(set(options) - aleph_options)
        if unknown:
            raise TypeError(f"AsyncClient got unexpected option(s): {', '.join(unknown)}")
        self._client = Client(token, host, **options)

    async def complete(self, request: CompletionRequest, model: str) -> CompletionResponse:
        return await asyncio.to_thread(self._client.complete, request, model)

    async def models(self) -> List[Mapping[str, Any]]:
        return self._client.models()

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
