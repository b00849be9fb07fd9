"""The Aleph Alpha API's routes, as aleph-alpha-client 11.x calls and parses them
(../shared/notes/http-contract.md): version, models_available, complete (JSON, or server-sent
events with "stream": true), evaluate, tokenize, detokenize, steering_concepts (201 {"id"}). Its
chat/completions route is OpenAI's, in openai.py."""

from __future__ import annotations

from typing import Any, AsyncIterator, Dict, List

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..chat import Message, conversation
from ..completion import CompletionRequest
from ..evaluation import EvaluationRequest
from ..steering import SteeringConceptCreationRequest
from ..stream import fold
from ..tokenization import DetokenizationRequest, TokenizationRequest
from ..validation import InvalidRequest, may_fail_at_first_step
from .app import API_VERSION, aleph_error, event_stream, primed, served_for, sse


def _bools(body: Dict[str, Any], *names: str) -> List[bool]:
    values = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, bool):
            raise InvalidRequest(name, f"must be true or false, got {value!r}")
        values.append(value)
    return values


def aleph_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/version", response_class=PlainTextResponse)
    async def version(request: Request) -> str:
        return API_VERSION  # public, as the Aleph API's: what a client checks before anything else

    @router.get("/models_available")
    async def models_available(request: Request) -> List[Dict[str, Any]]:
        served = served_for(request)
        available = []
        for name in served.models:
            info = served.backend.model_info(name)
            available.append({
                "name": name, "description": "", "max_context_size": info["context_length"], "hostings": [],
                "image_support": info.get("vision", False), "qa_support": False, "summarization_support": False,
                "embedding_types": [], "maximum_completion_tokens": info["context_length"],
                "aligned": info.get("chat", False),
            })
        return available

    @router.post("/complete")
    async def complete(request: Request):
        served = served_for(request)
        body = await served.body(request)
        model = served.model(body)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidRequest("stream", f"must be true or false, got {stream!r}")
        completion = CompletionRequest.from_json(body)
        # Validated and started (and its first step taken where that can fail) before the 200 goes
        # out: the Aleph API has no error event (a later failure ends with edgecomplete's own).
        items = await served.backend.astream(completion, model, streamed=stream)
        if may_fail_at_first_step(completion):
            items = await primed(items)
        if not stream:
            try:
                return JSONResponse(fold([item async for item in items]).to_json())
            finally:
                await items.aclose()

        async def events() -> AsyncIterator[bytes]:
            try:
                async for item in items:
                    yield sse(item.to_json())
            finally:
                await items.aclose()
        return event_stream(served, events(), lambda error: sse({"type": "error", **aleph_error(error)}))

    @router.post("/evaluate")
    async def evaluate(request: Request):
        served = served_for(request)
        body = await served.body(request)
        model = served.model(body)
        response = await served.client.evaluate(EvaluationRequest.from_json(body), model)
        return JSONResponse(response.to_json())

    @router.post("/tokenize")
    async def tokenize(request: Request):
        served = served_for(request)
        body = await served.body(request)
        model = served.model(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt", f"must be a string, got {prompt!r}")
        tokens, token_ids = _bools(body, "tokens", "token_ids")
        response = await served.client.tokenize(TokenizationRequest(prompt, tokens, token_ids), model)
        return {key: value for key, value in (("tokens", response.tokens), ("token_ids", response.token_ids))
                if value is not None}

    @router.post("/detokenize")
    async def detokenize(request: Request):
        served = served_for(request)
        body = await served.body(request)
        model = served.model(body)
        ids = body.get("token_ids")
        if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            raise InvalidRequest("token_ids", f"must be a list of integers, got {ids!r}")
        response = await served.client.detokenize(DetokenizationRequest(ids), model)
        return {"result": response.result}

    @router.post("/chat_template")
    async def chat_template(request: Request):
        """An edgecomplete extension: the conversation in the model's chat template, as a chat
        request would send it (what the aleph backend of another edgecomplete chats with)."""
        served = served_for(request)
        body = await served.body(request)
        model = served.model(body)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise InvalidRequest("messages", f"must be a list of messages, got {messages!r:.80}")
        parsed = [Message.from_json(m, i) for i, m in enumerate(messages)]
        prompt = await served.client.apply_chat_template(model, conversation(parsed))
        return {"prompt": prompt}

    @router.post("/steering_concepts", status_code=201)
    async def steering_concepts(request: Request):
        served = served_for(request)
        body = await served.body(request)
        unknown = sorted(set(body) - {"examples", "hosting", "tags"})
        if unknown:
            raise InvalidRequest(unknown[0], "is not a field of a steering concept request (examples)")
        response = await served.client.create_steering_concept(SteeringConceptCreationRequest.from_json(body))
        return JSONResponse(response.to_json(), status_code=201)

    return router
