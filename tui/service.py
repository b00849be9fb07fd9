"""The model side as the views see it (harlequin's adapter idea): the app makes one
GenerationService and hands it down; the views ask it for requests and generations and never
reach up into the app. It knows the current model, the client, the numbers of the generation in
progress, and where the parameters come from (an interface, not the panel widget)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

from edgecomplete import AsyncClient, CompletionRequest, SteeringConceptCreationRequest, SteeringPairedExample

from .generation import Generation
from .policy import build_request
from .stats import GenerationStats


class ParamsSource(Protocol):
    """Where a request's parameters come from (the parameter panel)."""

    def request_values(self) -> Optional[Dict[str, Any]]:
        """The values to send, or None where they cannot be sent (the source says why)."""


class GenerationService:
    def __init__(self, client: AsyncClient, model: str, params: ParamsSource, stats: GenerationStats):
        self.client = client
        self.model = model  # the current model: the one loaded last (see load)
        self.params = params
        self.stats = stats
        self.can_chat = True  # the model has a chat template (known once it is loaded)
        self.vision = False  # the model takes images (has a vision projector)

    async def load(self, model: str) -> Mapping[str, Any]:
        """Load `model` (on the engine's thread; the UI awaits it): its info (context length,
        sequence limit, chat template). Raises ModelNotPulledError for one not installed."""
        return await self.client.model_info(model)

    def use(self, model: str, info: Mapping[str, Any]) -> None:
        """Make the loaded `model` the current one: requests go to it from now on."""
        self.model = model
        self.can_chat = info["chat"]
        self.vision = bool(info.get("vision"))
        self.stats.context_length = info["context_length"]

    def no_chat_message(self) -> str:
        return (f"{self.model} has no chat template: a base model, which completes text but was not "
                f"tuned for chat. Use the Playground (F3), or pick a chat model (F2).")

    def request(self, chat: bool) -> Optional[CompletionRequest]:
        """A request from the parameters as they are now (the prompt left for the view to fill
        in); None if they cannot be sent."""
        values = self.params.request_values()
        return None if values is None else build_request(values, chat)

    async def chat_prompt(self, messages: List[Mapping[str, str]]) -> str:
        """The conversation in the current model's chat format; ValueError without a template."""
        return await self.client.apply_chat_template(self.model, messages)

    async def steering_concepts(self) -> List[Mapping[str, Any]]:
        return await self.client.steering_concepts()

    async def create_steering_concept(self, pairs: List[Tuple[str, str]]) -> str:
        """A concept from (negative, positive) pairs: its id. InvalidRequest names what is wrong."""
        request = SteeringConceptCreationRequest([SteeringPairedExample(n, p) for n, p in pairs])
        return (await self.client.create_steering_concept(request)).id

    def generation(self, request: CompletionRequest) -> Generation:
        return Generation(request, self.model)

    async def run(self, generation: Generation, on_text: Callable[[int, str], None]) -> None:
        """Stream `generation`, handing its text to `on_text` a frame at a time, the numbers
        counted in `stats`."""
        await generation.run(self.client, self.stats, on_text)
