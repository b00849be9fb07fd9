"""The `aleph` backend: the Aleph Alpha HTTP API, as another `edgecomplete serve` or the Aleph
Alpha API itself serves it. Requests and answers are the API's own JSON, so every field goes
through as it is; chat templates come from edgecomplete's /chat_template extension."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Sequence

from ..completion import CompletionRequest, CompletionResponse, CompletionResponseStreamItem, stream_item_from_json
from ..steering import SteeringConceptCreationRequest, SteeringConceptCreationResponse
from ..tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse
from ..completion import CompletionSummary, StreamChunk, StreamSummary
from ..validation import InvalidRequest, check_request
from .base import RemoteBackend, _Items


class AlephBackend(RemoteBackend):
    name = "aleph"

    def stream(self, request: CompletionRequest, model: str, streamed: bool = False) -> Iterator[CompletionResponseStreamItem]:
        check_request(request, streamed)
        body = {**request.to_json(), "model": model, "stream": streamed}
        items = self._streamed_items(body) if streamed else self._whole_items(body)
        return _Items(next(items), items)

    def _streamed_items(self, body: Dict[str, Any]) -> Iterator[CompletionResponseStreamItem]:
        for event in self.http.events("/complete", body):
            yield stream_item_from_json(event)

    def _whole_items(self, body: Dict[str, Any]) -> Iterator[CompletionResponseStreamItem]:
        response = CompletionResponse.from_json(self.http.call("POST", "/complete", body))
        for index, result in enumerate(response.completions):
            yield StreamChunk(index=index, log_probs=result.log_probs, completion=result.completion or "",
                              raw_completion=result.raw_completion, completion_tokens=result.completion_tokens)
            yield StreamSummary(index=index, model_version=response.model_version,
                                finish_reason=result.finish_reason or "end_of_text")
        yield CompletionSummary(response.optimized_prompt, response.num_tokens_prompt_total,
                                response.num_tokens_generated)

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        answer = self.http.call("POST", "/tokenize", {"model": model, **request.to_json()}, idempotent=True)
        return TokenizationResponse.from_json(answer)

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        answer = self.http.call("POST", "/detokenize", {"model": model, **request.to_json()}, idempotent=True)
        return DetokenizationResponse.from_json(answer)

    def _available(self) -> List[Mapping[str, Any]]:
        return self.http.call("GET", "/models_available", idempotent=True)

    def model_info(self, model: str) -> Mapping[str, Any]:
        entry = next((m for m in self._available() if m.get("name") == model), None)
        if entry is None:
            known = ", ".join(str(m.get("name")) for m in self._available())
            raise InvalidRequest("model", f"the aleph backend at {self.http.host} has no model {model!r}; it has: {known}")
        context = int(entry.get("max_context_size") or 0)
        return {"model": model, "context_length": context, "trained_context_length": context, "vocab_size": None,
                "layers": None, "max_sequences": 16, "chat": bool(entry.get("aligned")),
                "vision": bool(entry.get("image_support")), "steering": True, "backend": self.name,
                "host": self.http.host}

    def apply_chat_template(self, model: str, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str:
        answer = self.http.call("POST", "/chat_template", {"model": model, "messages": list(messages)},
                                idempotent=True)
        return answer["prompt"]

    def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        answer = self.http.call("POST", "/steering_concepts", request.to_json(), idempotent=True)
        return SteeringConceptCreationResponse(id=answer["id"])

    def models(self) -> List[Mapping[str, Any]]:
        return [{"name": m.get("name"), "description": f"on {self.http.host}", "installed": True,
                 "context_length": m.get("max_context_size")} for m in self._available()]
