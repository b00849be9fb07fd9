"""The faces: `Client` (synchronous) and `AsyncClient`, with the Aleph Alpha client's signatures.

Both are thin: resolve the model, plan the request, submit it to the model's engine (one decode
loop per model, shared by every request of every face), and fold or stream the items.
Connection options of the Aleph Alpha client (token, host, retries, ...) are accepted and ignored,
so existing code runs by changing the import.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import models
from .completion import CompletionRequest, CompletionResponse, CompletionResponseStreamItem
from .engine import Engine, Job, LlamaModel, check_context_options, on_llama_thread
from .plan import GenerationPlan, plan_completion
from .stream import StreamBuilder, fold, stream_items
from .tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse
from .validation import InvalidRequest, check_request

_open_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


@atexit.register
def _close_open_clients() -> None:
    # Stop engine threads before the interpreter tears down the modules they use.
    for client in list(_open_clients):
        client.close()


def _no_best_of_stream(request: CompletionRequest) -> None:
    if (request.best_of or 1) > 1:
        raise InvalidRequest(
            "best_of", "cannot be streamed: every candidate must end before the best are chosen; use complete()"
        )


class Client:
    """Runs completions on local GGUF models. Each model is loaded once, on first use.

    `model` arguments are registered model names (`edgecomplete models list`) or paths to .gguf
    files. A registered model that is not on this machine yet raises ModelNotPulledError, which
    names the command that fetches it.

    context_length: KV-cache size per model (default: the model's trained context, at most 8192);
        at least max_sequences + 3 and at most the trained context (InvalidRequest otherwise).
    threads: CPU threads for llama.cpp (default: every CPU this process may use).
    max_sequences: sequences one model serves at once, the candidates of all running requests
        together (a single request may ask for at most this many: max(n, best_of)).
    flash_attention: use llama.cpp's flash attention (None: llama.cpp decides, which turns it on
        for the CPU backend; it is faster and rounds slightly differently).
    prefix_cache: keep the KV cells of finished requests for later prompts that start alike (the
        next turn of a chat evaluates only the new tokens); False evaluates every prompt in full.
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
        prefix_cache: bool = True,
    ) -> None:
        check_context_options(context_length, max_sequences)  # before any model is loaded
        self._flash_attention = flash_attention
        self._prefix_cache = prefix_cache
        self._context_length = context_length
        self._threads = threads
        self._max_sequences = max_sequences
        self._engines: Dict[str, Engine] = {}
        self._engines_lock = threading.Lock()
        _open_clients.add(self)

    def engine(self, model: str) -> Engine:
        """The engine of `model`, loading the model on first use."""
        with self._engines_lock:
            if model not in self._engines:
                path = models.resolve(model)
                llama = on_llama_thread(lambda: LlamaModel(  # all llama.cpp work on one thread
                    path,
                    context_length=self._context_length,
                    threads=self._threads,
                    max_sequences=self._max_sequences,
                    flash_attention=self._flash_attention,
                ))
                version = model if not models.is_gguf_path(model) else Path(path).stem
                self._engines[model] = Engine(llama, model_version=version, prefix_cache=self._prefix_cache)
            return self._engines[model]

    def model_info(self, model: str) -> Mapping[str, Any]:
        """Facts of a loaded model: context length (as this client runs it), vocabulary size,
        sequence limit."""
        llama = self.engine(model).model
        return {
            "model": model,
            "context_length": llama.context_length,
            "trained_context_length": llama.trained_context_length,
            "vocab_size": llama.vocab_size,
            "max_sequences": llama.max_sequences,
            "chat": self._chat_template(model) is not None,  # has a chat template (apply_chat_template)
        }

    def apply_chat_template(
        self, model: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render chat messages ({"role": "system" | "user" | "assistant", "content": ...}) in the
        model's own chat format (the GGUF's template, or the manifest's); the text is meant to be
        sent as is (`disable_optimizations=True` keeps its final newline)."""
        template = self._chat_template(model)
        if template is None:
            raise models.NoChatTemplateError(
                f"{model} has no chat template (a base model, not tuned for chat): complete text with it "
                f"instead (the terminal UI's playground, `edgecomplete complete`)")
        pairs = [(m["role"], m["content"]) for m in messages]
        return self.engine(model).model.apply_chat_template(pairs, template, add_generation_prompt)

    def _chat_template(self, model: str) -> Optional[str]:
        fallback = None if models.is_gguf_path(model) else models.manifest(model).chat_template
        return self.engine(model).model.chat_template(fallback)

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        """Tokens of a text, as the model's tokenizer splits it (no BOS)."""
        llama = self.engine(model).model
        ids = llama.tokenize(request.prompt)
        texts = [llama.vocabulary.piece(t, raw=True).decode("utf-8", "replace") for t in ids]
        return TokenizationResponse(tokens=texts if request.tokens else None,
                                    token_ids=ids if request.token_ids else None)

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        llama = self.engine(model).model
        for token in request.token_ids:
            if not 0 <= token < llama.vocab_size:
                raise InvalidRequest("token_ids", f"token id {token} is not in [0, {llama.vocab_size})")
        return DetokenizationResponse(result=llama.detokenize(request.token_ids))

    def plan(self, request: CompletionRequest, model: str) -> Tuple[Engine, GenerationPlan]:
        """Validate `request` (model-independent rules first, before loading anything) and plan it."""
        check_request(request)
        engine = self.engine(model)
        return engine, plan_completion(request, engine.model)

    def _items(self, request: CompletionRequest, model: str) -> Iterator[CompletionResponseStreamItem]:
        engine, plan = self.plan(request, model)
        job = engine.submit(plan)
        return stream_items(plan, job.events(), engine.model_version, engine.model.vocabulary)

    def complete(self, request: CompletionRequest, model: str) -> CompletionResponse:
        """Generate the completion(s) of `request` on `model`."""
        return fold(self._items(request, model))

    def complete_with_streaming(
        self, request: CompletionRequest, model: str
    ) -> Iterator[CompletionResponseStreamItem]:
        """The completion as stream items, for synchronous code: StreamChunk as text becomes
        final, StreamSummary per completion, CompletionSummary last. Validation errors are raised
        here, before the first item; leaving the loop early stops the generation."""
        _no_best_of_stream(request)
        return self._items(request, model)

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
        """Stop the engines and free every loaded model."""
        with self._engines_lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
        _open_clients.discard(self)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class AsyncClient:
    """The asynchronous face: `async with AsyncClient() as client: await client.complete(...)`.

    Generation runs on the engine's thread, never on the event loop; several requests on one
    client share the model's decode batches. Options are those of `Client`.
    """

    def __init__(self, token: Optional[str] = None, host: Optional[str] = None, *,
                 client: Optional[Client] = None, **options: Any) -> None:
        """`client`: share the engines (loaded models) of an existing Client."""
        self._client = client if client is not None else Client(token, host, **options)
        self._owns_client = client is None

    async def _plan(self, request: CompletionRequest, model: str) -> Tuple[Engine, GenerationPlan]:
        check_request(request)  # cheap: before any thread hop
        return await asyncio.to_thread(self._client.plan, request, model)  # may load the model

    async def _events(self, job: Job, builder: StreamBuilder) -> AsyncIterator[CompletionResponseStreamItem]:
        async for event in job.aevents():
            for item in builder.feed(event):
                yield item
        yield builder.summary()

    async def complete(self, request: CompletionRequest, model: str) -> CompletionResponse:
        engine, plan = await self._plan(request, model)
        job = engine.submit(plan)
        builder = StreamBuilder(plan, engine.model.vocabulary, engine.model_version)
        try:
            return fold([item async for item in self._events(job, builder)])
        finally:
            job.cancel()  # when the awaiting task is cancelled

    async def complete_with_streaming(
        self, request: CompletionRequest, model: str
    ) -> AsyncIterator[CompletionResponseStreamItem]:
        """Stream items as they are generated: StreamChunk, one StreamSummary per completion, one
        CompletionSummary last. `aclose()`, cancelling the task, or leaving the loop stops the
        generation and frees its KV cells."""
        _no_best_of_stream(request)
        engine, plan = await self._plan(request, model)
        job = engine.submit(plan)
        builder = StreamBuilder(plan, engine.model.vocabulary, engine.model_version)
        try:
            async for item in self._events(job, builder):
                yield item
        finally:
            job.cancel()

    async def models(self) -> List[Mapping[str, Any]]:
        return self._client.models()

    async def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        return await asyncio.to_thread(self._client.tokenize, request, model)

    async def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        return await asyncio.to_thread(self._client.detokenize, request, model)

    async def model_info(self, model: str) -> Mapping[str, Any]:
        return await asyncio.to_thread(self._client.model_info, model)  # may load the model

    async def apply_chat_template(
        self, model: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return await asyncio.to_thread(self._client.apply_chat_template, model, messages, add_generation_prompt)

    async def close(self) -> None:
        if self._owns_client:
            await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
