"""What every remote backend shares: validation before any request, the candidates' results
turned into the API's stream items (best_of ranked here, greedy candidates copied), and the
asyncio face over the synchronous one.

A backend says how it asks (`_whole`: every candidate at once; `_streamed`: deltas as they come)
in its server's terms; everything the API adds on top is computed here, the same for all.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Dict, Iterator, List, Mapping, Optional

from ..completion import (CompletionRequest, CompletionResponseStreamItem, CompletionSummary, StreamChunk,
                          StreamSummary)
from ..plan import is_greedy, optimize_prompt
from ..steering import SteeringConceptCreationRequest, SteeringConceptCreationResponse
from ..validation import InvalidRequest, candidate_count, check_request
from .http import Http
from .support import refuse_unsupported


@dataclass
class Candidate:
    """One completion as the server returned it: text, tokens and their log-probs (each a
    {token: log-prob} with the chosen token first), why it ended."""

    text: str = ""
    tokens: List[str] = field(default_factory=list)
    log_probs: List[Dict[str, float]] = field(default_factory=list)
    chosen: List[float] = field(default_factory=list)  # the chosen tokens' log-probs (ranking)
    finish_reason: Optional[str] = None
    generated: int = 0  # tokens it generated


@dataclass
class Delta:
    """A piece of candidate `index`'s completion as it streams; `finish_reason` on its last."""

    index: int
    text: str = ""
    tokens: List[str] = field(default_factory=list)
    log_probs: List[Dict[str, float]] = field(default_factory=list)
    finish_reason: Optional[str] = None


@dataclass
class Ask:
    """What to ask the server for one request: `candidates` completions (one when greedy ones
    are copied), token log-probs (`top` alternatives; -1: none), and what to give back."""

    request: CompletionRequest
    candidates: int
    copies: int  # each completion stands for this many (greedy: all alike)
    top: int
    want_tokens: bool
    want_log_probs: bool


class RemoteBackend:
    """The seam (edgecomplete.backend.Backend) over an engine reached by HTTP."""

    name = "remote"

    def __init__(self, host: str, token: Optional[str] = None, verify_ssl: bool = True, timeout: float = 305.0):
        self.http = Http(host, self.name, token, verify_ssl, timeout)

    # ---- completions -------------------------------------------------------------------------------

    def stream(self, request: CompletionRequest, model: str,
               streamed: bool = False) -> Iterator[CompletionResponseStreamItem]:
        check_request(request, streamed)
        refuse_unsupported(request, self.name)
        ask = self._ask(request)
        items = self._stream_items(ask, model) if streamed and not request.best_of else self._whole_items(ask, model)
        first = next(items)  # the request is made (and refused) here, before the caller iterates
        return _Items(first, items)

    async def astream(self, request: CompletionRequest, model: str,
                      streamed: bool = False) -> AsyncIterator[CompletionResponseStreamItem]:
        items = await asyncio.to_thread(self.stream, request, model, streamed)
        return _async_items(items)

    def _ask(self, request: CompletionRequest) -> Ask:
        if not request.disable_optimizations:
            request = CompletionRequest(**{**request.__dict__, "prompt": optimize_prompt(request.prompt)})
        wanted = candidate_count(request)
        greedy = is_greedy(request) and wanted > 1
        top = -1
        if request.log_probs is not None or request.tokens or (request.best_of or 1) > 1:
            top = request.log_probs or 0
        return Ask(request, 1 if greedy else wanted, wanted if greedy else 1, top, request.tokens,
                   request.log_probs is not None)

    def _whole_items(self, ask: Ask, model: str) -> Iterator[CompletionResponseStreamItem]:
        candidates, prompt_tokens, version = self._whole(ask, model)
        candidates = [c for c in candidates for _ in range(ask.copies)]
        generated = sum(c.generated for c in candidates)
        if (ask.request.best_of or 1) > 1:  # the best n by mean log-prob of the chosen tokens
            candidates = sorted(candidates, key=_mean_log_prob, reverse=True)[: ask.request.n]
        for index, candidate in enumerate(candidates):
            yield StreamChunk(index=index, completion=candidate.text,
                              log_probs=candidate.log_probs if ask.want_log_probs else None,
                              completion_tokens=candidate.tokens if ask.want_tokens else None, raw_completion=None)
            yield StreamSummary(index=index, model_version=version, finish_reason=candidate.finish_reason or "end_of_text")
        yield CompletionSummary(None, prompt_tokens * candidate_count(ask.request), generated)

    def _stream_items(self, ask: Ask, model: str) -> Iterator[CompletionResponseStreamItem]:
        counts = [0] * ask.candidates
        summary = {"prompt_tokens": 0, "version": model}
        for delta in self._streamed(ask, model, summary):
            counts[delta.index] += max(len(delta.tokens), 1 if delta.text else 0)
            for copy in range(ask.copies):
                index = delta.index * ask.copies + copy
                if delta.text or delta.tokens:
                    yield StreamChunk(index=index, completion=delta.text,
                                      log_probs=delta.log_probs if ask.want_log_probs else None,
                                      completion_tokens=delta.tokens if ask.want_tokens else None, raw_completion=None)
                if delta.finish_reason:
                    yield StreamSummary(index=index, model_version=summary["version"], finish_reason=delta.finish_reason)
        generated = summary.get("generated", sum(counts)) * ask.copies
        yield CompletionSummary(None, summary["prompt_tokens"] * candidate_count(ask.request), generated)

    def _whole(self, ask: Ask, model: str):
        """(candidates, prompt tokens, model version) of one whole answer."""
        raise NotImplementedError

    def _streamed(self, ask: Ask, model: str, summary: Dict[str, Any]) -> Iterator[Delta]:
        """Deltas as they come; fills summary["prompt_tokens"] (and "generated", "version")."""
        raise NotImplementedError

    # ---- what a remote backend has no way to do -------------------------------------------------

    def create_steering_concept(self, request: SteeringConceptCreationRequest) -> SteeringConceptCreationResponse:
        raise InvalidRequest("steering_concepts", f"the {self.name} backend has no steering concepts")

    def steering_concepts(self) -> List[Mapping[str, Any]]:
        return []

    def models(self) -> List[Mapping[str, Any]]:
        return []

    def close(self) -> None:
        self.http.close()


class _Items:
    """A started stream: its first item already fetched (so errors came before it was handed
    out); closing it closes the HTTP stream."""

    def __init__(self, first, rest: Iterator):
        self._first, self._rest = [first], rest

    def __iter__(self):
        return self

    def __next__(self):
        if self._first:
            return self._first.pop()
        return next(self._rest)

    def close(self) -> None:
        self._rest.close()


async def _async_items(items: _Items) -> AsyncIterator[CompletionResponseStreamItem]:
    done = object()
    try:
        while (item := await asyncio.to_thread(next, items, done)) is not done:
            yield item
    finally:
        await asyncio.to_thread(items.close)


def _mean_log_prob(candidate: Candidate) -> float:
    return sum(candidate.chosen) / len(candidate.chosen) if candidate.chosen else -math.inf


def finish_reason(kind: str) -> str:
    """The API's finish reason for the usual server words."""
    return {"length": "maximum_tokens", "limit": "maximum_tokens", "word": "stop_sequence_reached",
            "stop_sequence": "stop_sequence_reached", "eos": "end_of_text"}.get(kind, "end_of_text")
