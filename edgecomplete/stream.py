"""Engine events -> the API's stream items -> (folded) CompletionResponse.

Streaming and non-streaming share this path: `complete` is `fold(stream_items(...))`, so a
completion always equals the joined chunks of its stream. The events carry every text they
need (engine/events.py), so this module knows no model.
"""

from __future__ import annotations

import codecs
from typing import AsyncIterable, AsyncIterator, Dict, Iterable, Iterator, List, Optional, Sequence

from .completion import (
    CompletionResponse,
    CompletionResponseStreamItem,
    CompletionResult,
    CompletionSummary,
    DecodeStats,
    StreamChunk,
    StreamSummary,
)
from .engine.events import CandidatesDropped, Decoded, EngineEvent, PromptEcho, SequenceFinished, TokenEntry, TokenSampled
from .plan import GenerationPlan


def _utf8_decoder():
    # Holds back an incomplete UTF-8 character until its last byte arrives, so chunks never end
    # inside a character and their concatenation decodes exactly like the whole text.
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def token_text(data: bytes) -> str:
    """A token's text as the API shows it (a lone part of a UTF-8 character becomes U+FFFD)."""
    return data.decode("utf-8", errors="replace")


def log_prob_entry(entry: TokenEntry) -> Dict[str, Optional[float]]:
    """{token: log-prob} of the chosen token plus its alternatives; on a key collision (two tokens
    spelled alike) the larger value stays. The first prompt token of an echo has none: {}."""
    if entry.logprob is None:
        return {}
    values: Dict[str, Optional[float]] = {}
    for token, text, logprob in ((entry.token, entry.text, entry.logprob), *entry.top):
        key = token_text(entry.text if token == entry.token else text)
        if key not in values or values[key] < logprob:
            values[key] = float(logprob)
    return values


class StreamBuilder:
    """Turns one request's engine events into stream items, as they arrive."""

    def __init__(self, plan: GenerationPlan, model_version: str):
        self.plan = plan
        self.model_version = model_version
        self.generated = 0
        self.decode_stats: Optional[DecodeStats] = None
        self._text = [_utf8_decoder() for _ in plan.samplers]
        self._raw = [_utf8_decoder() for _ in plan.samplers]

    def feed(self, event: EngineEvent) -> List[CompletionResponseStreamItem]:
        if isinstance(event, PromptEcho):
            return self._chunk(event.index, event.text, event.raw, event.tokens)
        if isinstance(event, TokenSampled):
            self.generated += 1
            return self._chunk(event.index, event.text, event.raw, event.tokens)
        if isinstance(event, SequenceFinished):
            plan = self.plan
            # With raw_completion / tokens / log_probs, every candidate gets a final chunk.
            force = plan.include_raw_completion or plan.want_token_entries
            items = self._chunk(event.index, b"", b"", (), final=True, force=force)
            summary = StreamSummary(index=event.index, model_version=self.model_version,
                                    finish_reason=event.finish_reason)
            return items + [summary]
        if isinstance(event, CandidatesDropped):
            self.generated += event.generated
        if isinstance(event, Decoded):
            self.decode_stats = DecodeStats(event.decode_steps, event.drafted_tokens, event.accepted_drafts)
        return []

    def summary(self) -> CompletionSummary:
        return CompletionSummary(
            optimized_prompt=self.plan.optimized_prompt,
            num_tokens_prompt_total=self.plan.num_tokens_prompt_total,
            num_tokens_generated=self.generated,
            decode_stats=self.decode_stats,
        )

    def _chunk(self, index: int, text: bytes, raw: bytes, tokens: Sequence[TokenEntry],
               final: bool = False, force: bool = False) -> List[CompletionResponseStreamItem]:
        plan = self.plan
        completion = self._text[index].decode(text, final=final)
        raw_completion = self._raw[index].decode(raw, final=final) if plan.include_raw_completion else None
        completion_tokens = [token_text(t.text) for t in tokens] if plan.tokens else None
        log_probs = [log_prob_entry(t) for t in tokens] if plan.log_probs is not None else None
        if not (completion or raw_completion or completion_tokens or log_probs or force):
            return []
        return [StreamChunk(index=index, log_probs=log_probs, completion=completion,
                            raw_completion=raw_completion, completion_tokens=completion_tokens)]


def stream_items(
    plan: GenerationPlan, events: Iterable[EngineEvent], model_version: str
) -> Iterator[CompletionResponseStreamItem]:
    """StreamChunk as text becomes final, StreamSummary when a candidate ends, CompletionSummary last."""
    builder = StreamBuilder(plan, model_version)
    for event in events:
        yield from builder.feed(event)
    yield builder.summary()


async def astream_items(
    plan: GenerationPlan, events: AsyncIterable[EngineEvent], model_version: str
) -> AsyncIterator[CompletionResponseStreamItem]:
    """`stream_items` of events that arrive asynchronously."""
    builder = StreamBuilder(plan, model_version)
    async for event in events:
        for item in builder.feed(event):
            yield item
    yield builder.summary()


def fold_result(items: Iterable[CompletionResponseStreamItem]) -> CompletionResult:
    """One completion from its own stream items (its StreamChunks and its StreamSummary)."""
    chunks: List[StreamChunk] = []
    reason: Optional[str] = None
    for item in items:
        if isinstance(item, StreamChunk):
            chunks.append(item)
        elif isinstance(item, StreamSummary):
            reason = item.finish_reason
    raws = [c.raw_completion for c in chunks if c.raw_completion is not None]
    tokens = [c.completion_tokens for c in chunks if c.completion_tokens is not None]
    log_probs = [c.log_probs for c in chunks if c.log_probs is not None]
    return CompletionResult(
        log_probs=[entry for part in log_probs for entry in part] if log_probs else None,
        completion="".join(c.completion for c in chunks),
        completion_tokens=[token for part in tokens for token in part] if tokens else None,
        raw_completion="".join(raws) if raws else None,
        finish_reason=reason,
    )


def fold(items: Iterable[CompletionResponseStreamItem]) -> CompletionResponse:
    """The CompletionResponse that a stream adds up to."""
    own: Dict[int, List[CompletionResponseStreamItem]] = {}  # each completion's items
    ended: List[int] = []
    model_version = ""
    summary: Optional[CompletionSummary] = None
    for item in items:
        if isinstance(item, (StreamChunk, StreamSummary)):
            own.setdefault(item.index, []).append(item)
        if isinstance(item, StreamSummary):
            ended.append(item.index)
            model_version = item.model_version
        elif isinstance(item, CompletionSummary):
            summary = item
    if summary is None:
        raise RuntimeError("the completion stream ended without its CompletionSummary")
    return CompletionResponse(
        model_version=model_version,
        completions=[fold_result(own[index]) for index in sorted(ended)],
        num_tokens_prompt_total=summary.num_tokens_prompt_total,
        num_tokens_generated=summary.num_tokens_generated,
        optimized_prompt=summary.optimized_prompt,
        decode_stats=summary.decode_stats,
    )
