"""The faces: `Client` (synchronous) and `AsyncClient`, with the Aleph Alpha client's signatures.

Both are thin over one Backend (backend.py): the local llama.cpp engine unless another is
given. `complete` is the folded stream (stream.fold), so a completion always equals the joined
chunks of its stream. Connection options of the Aleph Alpha client (token, host, retries, ...)
are accepted and ignored, so existing code runs by changing the import.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, List, Mapping, Optional, Sequence, Union

from . import chat, evaluation
from .backend import Backend
from .chat import ChatRequest, ChatResponse, ChatStreamItem
from .completion import CompletionRequest, CompletionResponse, CompletionResponseStreamItem
from .evaluation import EvaluationRequest, EvaluationResponse
from .steering import SteeringConceptCreationRequest, SteeringConceptCreationResponse
from .stream import fold
from .validation import InvalidRequest
from .tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse


class Client:
    """Runs completions on local GGUF models (each loaded once, on first use), or on a remote
    engine: `Client(host="http://gpu-box:8000", backend="openai")`.

    host, backend, token: a remote engine at `host` (http:// or https://), spoken to as `backend`
        says: "aleph" (the default: the Aleph Alpha API, e.g. another `edgecomplete serve`),
        "openai" (an OpenAI-compatible server such as vLLM) or "llama-server" (llama.cpp's
        server); `token` is sent as a bearer token, `verify_ssl` and `request_timeout_seconds`
        apply, and idempotent calls are retried with backoff. Without `host`, the local engine.

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
    speculation: draft tokens from each request's own text (prompt lookup) and verify them in
        the decode batch, several tokens a step where the text repeats its context; the text is
        the one without it. False decodes one token per step.
    kv_cache: the KV cache's element type, "bf16", "f16" or "q8_0" (None: bf16 on the CPU, where
        it makes a request compute exactly what it would alone, next to any other requests; f16,
        llama.cpp's default, where this build offloads to a GPU). f16 on the CPU evaluates long
        prompts faster and matches llama.cpp's own numerics.
    repack: let llama.cpp repack the weights for its multi-row CPU kernels (its default), where
        it has them for the model's types (e.g. Q4_K, Q4_0). None (the default): on where the
        build has ggml's AMX kernels (an x86 CPU with AMX): they multiply a batch of rows exactly
        as each row alone and decode faster. Off elsewhere: llama.cpp's other repacked kernels
        compute a batch of 4 or more rows otherwise than a row alone, so a request would round
        otherwise next to others, and a step may verify at most 2 drafts; without them
        gemma-3-270m (Q4_K) batches 7 rows exactly at the same speed on AVX-512. On CPUs where
        they are faster for long prompts, True trades that exactness for it.
    mmproj: the vision projector (mmproj GGUF) of the models this client loads by path, so that
        their prompts may hold images; or a mapping from model (name or path) to its projector.
        A model registered with one (`edgecomplete models add NAME --gguf ... --mmproj ...`)
        needs none here.
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
        speculation: bool = True,
        kv_cache: Optional[str] = None,
        repack: Optional[bool] = None,
        mmproj: Optional[Union[str, Path, Mapping[str, Union[str, Path]]]] = None,
        backend: Optional[Union[Backend, str]] = None,
    ) -> None:
        """`backend`: run on this Backend (which the client then owns and closes) instead of a
        local engine made from the options; or the name of a remote protocol for `host`."""
        if host is not None or isinstance(backend, str):
            from .remote import remote_backend

            if host is None:
                raise InvalidRequest("host", f"backend {backend!r} names a remote protocol: give the host's URL")
            backend = remote_backend(host, backend or "aleph", token, verify_ssl, request_timeout_seconds)
        if backend is None:
            from .engine import LocalBackend

            backend = LocalBackend(context_length=context_length, threads=threads, max_sequences=max_sequences,
                                   flash_attention=flash_attention, prefix_cache=prefix_cache,
                                   speculation=speculation, kv_cache=kv_cache, repack=repack,
                                   projectors=mmproj if isinstance(mmproj, Mapping) else None,
                                   projector=None if isinstance(mmproj, Mapping) else mmproj)
        self.backend = backend

    def complete(self, request: CompletionRequest, model: str) -> CompletionResponse:
        """Generate the completion(s) of `request` on `model`."""
        return fold(self.backend.stream(request, model))

    def complete_with_streaming(
        self, request: CompletionRequest, model: str
    ) -> Iterator[CompletionResponseStreamItem]:
        """The completion as stream items, for synchronous code: StreamChunk as text becomes
        final, StreamSummary per completion, CompletionSummary last. Validation errors are raised
        here, before the first item; leaving the loop early stops the generation."""
        return self.backend.stream(request, model, streamed=True)

    def evaluate(self, request: EvaluationRequest, model: str) -> EvaluationResponse:
        """How likely `model` is to continue the prompt with `completion_expected`: its
        log-probability, perplexities and whether greedy decoding would produce it."""
        expected = self._expected_tokens(request, model)
        completion = self.complete(evaluation.as_completion(request, expected), model)
        return evaluation.response_from(request, len(expected), completion)

    def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        """The assistant's reply to the conversation, in the model's chat template."""
        return chat.response_from(self.complete(self._chat_completion(request, model), model))

    def chat_with_streaming(self, request: ChatRequest, model: str) -> Iterator[ChatStreamItem]:
        """The reply as it is generated: a ChatStreamChunk with the role first, then chunks of
        text, the FinishReason, and Usage last with `stream_options.include_usage`. Leaving the
        loop stops the generation. Validation errors are raised here, before the first item."""
        items = self.backend.stream(self._chat_completion(request, model), model, streamed=True)
        return _chat_items(items, chat.ChatStream(bool(request.stream_options and request.stream_options.include_usage)))

    def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        """A steering concept from paired examples (negative -> positive): its id goes in
        `CompletionRequest.steering_concepts` to push generation toward the positive side.
        The same examples give the same id; concepts are kept in the data folder."""
        return self.backend.create_steering_concept(request)

    def steering_concepts(self) -> List[Mapping[str, Any]]:
        """The kept concepts (an edgecomplete extension): id, pairs, the first pair, where an
        imported one came from, the models that have its vectors."""
        return self.backend.steering_concepts()

    def _expected_tokens(self, request: EvaluationRequest, model: str) -> List[int]:
        return list(self.tokenize(TokenizationRequest(request.completion_expected, False, True), model).token_ids)

    def _chat_completion(self, request: ChatRequest, model: str) -> CompletionRequest:
        chat.check_supported(request)  # before the template is rendered
        return chat.as_completion(request, self.apply_chat_template(model, chat.conversation(request.messages)))

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        """Tokens of a text, as the model's tokenizer splits it (no BOS)."""
        return self.backend.tokenize(request, model)

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        return self.backend.detokenize(request, model)

    def model_info(self, model: str) -> Mapping[str, Any]:
        """Facts of a model (loading it): context length (as this client runs it), vocabulary
        size, sequence limit, and whether it chats (has a chat template)."""
        return self.backend.model_info(model)

    def apply_chat_template(
        self, model: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render chat messages ({"role": "system" | "user" | "assistant", "content": ...}) in the
        model's own chat format (the GGUF's template, or the manifest's); the text is meant to be
        sent as is (`disable_optimizations=True` keeps its final newline). A model without one
        raises NoChatTemplateError."""
        return self.backend.apply_chat_template(model, messages, add_generation_prompt)

    def models(self) -> List[Mapping[str, Any]]:
        """Registered models and whether each is installed."""
        return self.backend.models()

    def close(self) -> None:
        """Stop the engines and free every loaded model."""
        self.backend.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _chat_items(items, replies: "chat.ChatStream") -> Iterator[ChatStreamItem]:
    try:
        yield from replies.start()
        for item in items:
            yield from replies.feed(item)
    finally:
        items.close()


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

    async def complete(self, request: CompletionRequest, model: str) -> CompletionResponse:
        items = await self._client.backend.astream(request, model)
        try:
            return fold([item async for item in items])
        finally:
            await items.aclose()  # also when the awaiting task is cancelled

    async def complete_with_streaming(
        self, request: CompletionRequest, model: str
    ) -> AsyncIterator[CompletionResponseStreamItem]:
        """Stream items as they are generated: StreamChunk, one StreamSummary per completion, one
        CompletionSummary last. `aclose()`, cancelling the task, or leaving the loop stops the
        generation and frees its KV cells."""
        items = await self._client.backend.astream(request, model, streamed=True)
        try:
            async for item in items:
                yield item
        finally:
            await items.aclose()

    async def evaluate(self, request: EvaluationRequest, model: str) -> EvaluationResponse:
        expected = await asyncio.to_thread(self._client._expected_tokens, request, model)
        completion = await self.complete(evaluation.as_completion(request, expected), model)
        return evaluation.response_from(request, len(expected), completion)

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        completion = await asyncio.to_thread(self._client._chat_completion, request, model)
        return chat.response_from(await self.complete(completion, model))

    async def chat_with_streaming(self, request: ChatRequest, model: str) -> AsyncIterator[ChatStreamItem]:
        """As `Client.chat_with_streaming`; `aclose()` or cancelling stops the generation."""
        completion = await asyncio.to_thread(self._client._chat_completion, request, model)
        replies = chat.ChatStream(bool(request.stream_options and request.stream_options.include_usage))
        items = await self._client.backend.astream(completion, model, streamed=True)
        try:
            for reply in replies.start():
                yield reply
            async for item in items:
                for reply in replies.feed(item):
                    yield reply
        finally:
            await items.aclose()

    async def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        return await asyncio.to_thread(self._client.create_steering_concept, request)

    async def steering_concepts(self) -> List[Mapping[str, Any]]:
        return await asyncio.to_thread(self._client.steering_concepts)

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
