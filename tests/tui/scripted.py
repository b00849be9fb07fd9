"""A scripted Backend for pure UI behaviour: the terminal UI runs on it unchanged, as on the local
engine (edgecomplete.backend.Backend is the only thing the UI's client stands on). It answers
every request with a known text, chunk by chunk, and records what it was asked; `hold()` stops
a reply after its first chunks until `release()`. No model, no llama.cpp."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Mapping, Optional, Sequence

from edgecomplete import (
    CompletionRequest,
    CompletionSummary,
    DetokenizationRequest,
    DetokenizationResponse,
    InvalidRequest,
    SteeringConceptCreationRequest,
    SteeringConceptCreationResponse,
    SteeringPairedExample,
    StreamChunk,
    StreamSummary,
    TokenizationRequest,
    TokenizationResponse,
    check_request,
)

from edgecomplete.steering import check_examples, concept_id

CONTEXT = 2048


class ScriptedBackend:
    def __init__(self, reply: str = "A scripted reply, word by word.", chat: bool = True, vision: bool = False):
        self.reply = reply
        self.chat = chat
        self.vision = vision
        self.requests: List[CompletionRequest] = []
        self.closed_streams = 0  # iterators closed by their consumer
        self.concepts: Dict[str, List[SteeringPairedExample]] = {}
        self.refusal: Optional[InvalidRequest] = None  # raised by the next request
        self._gate: Optional[asyncio.Event] = None

    def hold(self) -> None:
        """Replies stop after their first two chunks until release()."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()

    def _words(self) -> List[str]:
        words = self.reply.split(" ")
        return [word if i == 0 else " " + word for i, word in enumerate(words)]

    def _start(self, request: CompletionRequest, streamed: bool) -> None:
        check_request(request, streamed)
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
        self.requests.append(request)

    def _items(self, request: CompletionRequest):
        candidates = max(request.n, request.best_of or 1)
        words = self._words()[: request.maximum_tokens or None]
        for number, word in enumerate(words):
            for index in range(request.n):
                yield number, StreamChunk(index=index, log_probs=None, completion=word, raw_completion=None,
                                          completion_tokens=[word] if request.tokens else None)
        for index in range(request.n):
            reason = "maximum_tokens" if len(words) < len(self._words()) else "end_of_text"
            yield len(words), StreamSummary(index=index, model_version="scripted", finish_reason=reason)
        yield len(words), CompletionSummary(optimized_prompt=None, num_tokens_prompt_total=3 * candidates,
                                            num_tokens_generated=len(words) * candidates)

    def stream(self, request: CompletionRequest, model: str, streamed: bool = False):
        self._start(request, streamed)
        return (item for _, item in self._items(request))

    async def astream(self, request: CompletionRequest, model: str, streamed: bool = False):
        self._start(request, streamed)
        backend = self

        async def items():
            try:
                for number, item in backend._items(request):
                    if number >= 2 and backend._gate is not None:
                        await backend._gate.wait()
                    await asyncio.sleep(0.01)
                    yield item
            except (GeneratorExit, asyncio.CancelledError):
                backend.closed_streams += 1
                raise
        return items()

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        words = request.prompt.split()
        return TokenizationResponse(tokens=words if request.tokens else None,
                                    token_ids=list(range(len(words))) if request.token_ids else None)

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        return DetokenizationResponse(result=" ".join(str(t) for t in request.token_ids))

    def model_info(self, model: str) -> Mapping[str, Any]:
        return {"model": model, "context_length": CONTEXT, "trained_context_length": CONTEXT, "vocab_size": 100,
                "max_sequences": 16, "chat": self.chat, "vision": self.vision, "steering": False}

    def apply_chat_template(self, model: str, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str:
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def models(self) -> List[Dict[str, Any]]:
        return [{"name": "scripted", "description": "a scripted backend", "context_length": CONTEXT,
                 "license": "", "installed": True, "path": ""}]

    def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        check_examples(request.examples)  # the real rules, so the UI shows the real refusals
        identifier = concept_id(request.examples)
        self.concepts[identifier] = list(request.examples)
        return SteeringConceptCreationResponse(identifier)

    def steering_concepts(self) -> List[Dict[str, Any]]:
        return [{"id": identifier, "pairs": len(pairs), "first": pairs[0].to_json(), "imported": None, "models": []}
                for identifier, pairs in self.concepts.items()]

    def close(self) -> None:
        pass
