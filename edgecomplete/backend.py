"""The seam under every face: what a backend does for Client, AsyncClient, the CLI, the terminal
UI (and a server).

A backend runs requests on models and yields the API's stream items; it tokenizes, tells a
model's facts and renders its chat template. The in-process llama.cpp engine
(`edgecomplete.engine.LocalBackend`) is the first; a backend that speaks HTTP to another engine
implements the same methods, and no face changes. Requests carry everything (images as Prompt
items, steering concepts by id), so what a model can do is told by `model_info` (`chat`,
`vision`, `steering`), and a backend refuses what it cannot do with InvalidRequest naming the
field.

A backend validates each request once (`check_request`), before any work, and raises its
errors from `stream`/`astream` itself, before the first item.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator, List, Mapping, Protocol, Sequence, runtime_checkable

from .completion import CompletionRequest, CompletionResponseStreamItem
from .steering import SteeringConceptCreationRequest, SteeringConceptCreationResponse
from .tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse


class BusyError(Exception):
    """The backend cannot take the request now (its queue is full): the same request may succeed
    later. The HTTP server answers 503 with Retry-After; the Aleph client raises its BusyError."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after  # seconds a caller should wait before trying again


@runtime_checkable
class Backend(Protocol):
    def stream(self, request: CompletionRequest, model: str,
               streamed: bool = False) -> Iterator[CompletionResponseStreamItem]:
        """Start `request` on `model`: StreamChunk as text becomes final, StreamSummary when a
        candidate ends, CompletionSummary last. `streamed`: the caller takes the items as they
        come (best_of cannot be streamed). Closing the iterator stops the generation."""

    async def astream(self, request: CompletionRequest, model: str,
                      streamed: bool = False) -> AsyncIterator[CompletionResponseStreamItem]:
        """`stream` for asyncio code: awaiting it validates and starts the request; `aclose()`
        on the returned iterator, or cancelling the task that iterates it, stops it."""

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse: ...

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse: ...

    def model_info(self, model: str) -> Mapping[str, Any]:
        """model, context_length, trained_context_length, vocab_size, max_sequences, and what it
        can do: chat (has a chat template), vision (takes Image items), steering."""

    def apply_chat_template(self, model: str, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str: ...

    def models(self) -> List[Mapping[str, Any]]:
        """The models this backend offers (name, description, installed, ...)."""

    def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        """Keep a steering concept made of `request.examples`; its id (the same examples, the
        same id) then works in `steering_concepts` on every model that can be steered."""

    def steering_concepts(self) -> List[Mapping[str, Any]]:
        """The concepts this backend keeps: id, pairs, first pair, ... (empty where it cannot list them)."""

    def close(self) -> None: ...
