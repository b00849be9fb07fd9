"""One generation, streamed through the public API: the request, its live text per candidate,
its numbers. Views own a Generation while it runs; the UI thread never waits on the model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from edgecomplete import (
    AsyncClient,
    CompletionRequest,
    CompletionResponse,
    CompletionSummary,
    StreamChunk,
    TokenizationRequest,
    fold_stream,
)

from .widgets import GenerationStats


@dataclass
class Generation:
    """A request in flight. `on_text(index, text)` is called for every chunk of text."""

    request: CompletionRequest
    model: str
    texts: Dict[int, str] = field(default_factory=dict)
    response: Optional[CompletionResponse] = None
    cancelled: bool = False
    error: Optional[str] = None

    async def run(self, client: AsyncClient, stats: GenerationStats, on_text: Callable[[int, str], None]) -> None:
        prompt_text = self.request.prompt.items[0].text if self.request.prompt.items else ""
        counted = await client.tokenize(TokenizationRequest(prompt_text, tokens=False, token_ids=True), self.model)
        stats.start(len(counted.token_ids or []))
        try:
            if (self.request.best_of or 1) > 1:  # cannot stream: every candidate must end first
                self.response = await client.complete(self.request, self.model)
                for index, result in enumerate(self.response.completions):
                    stats.chunk(len(result.completion_tokens or []))
                    self.texts[index] = result.completion or ""
                    on_text(index, self.texts[index])
            else:
                items: List = []
                async for item in client.complete_with_streaming(self.request, self.model):
                    items.append(item)
                    if isinstance(item, StreamChunk):
                        stats.chunk(len(item.completion_tokens or []))
                        if item.completion:
                            self.texts[item.index] = self.texts.get(item.index, "") + item.completion
                            on_text(item.index, item.completion)
                    elif isinstance(item, CompletionSummary):
                        stats.prompt_tokens = item.num_tokens_prompt_total // max(self.candidates, 1)
                self.response = fold_stream(items)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except ValueError as error:  # the API's validation message
            self.error = str(error)
        finally:
            stats.stop()

    @property
    def candidates(self) -> int:
        return max(self.request.n, self.request.best_of or 1)
