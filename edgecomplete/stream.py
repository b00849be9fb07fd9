"""Engine events -> the API's stream items -> (folded) CompletionResponse.

Streaming and non-streaming share this path: `complete` is `fold(stream_items(...))`, so a
completion always equals the joined chunks of its stream.
"""

from __future__ import annotations

import codecs
from typing import Dict, Iterable, Iterator, List, Optional

from .completion import (
    CompletionResponse,
    CompletionResponseStreamItem,
    CompletionResult,
    CompletionSummary,
    StreamChunk,
    StreamSummary,
)
from .engine import EngineEvent, SequenceFinished, TokenSampled
from .plan import GenerationPlan


def _utf8_decoder():
    # Holds back an incomplete UTF-8 character until its last byte arrives, so chunks never end
    # inside a character and their concatenation decodes exactly like the whole text.
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def stream_items(
    plan: GenerationPlan, events: Iterable[EngineEvent], model_version: str
) -> Iterator[CompletionResponseStreamItem]:
    """StreamChunk as text becomes final, StreamSummary when a candidate ends, CompletionSummary last."""
    text_decoders = [_utf8_decoder() for _ in plan.samplers]
    raw_decoders = [_utf8_decoder() for _ in plan.samplers]
    generated = 0
    for event in events:
        if isinstance(event, TokenSampled):
            generated += 1
            text = text_decoders[event.index].decode(event.text)
            raw = raw_decoders[event.index].decode(event.raw) if plan.include_raw_completion else None
            if text or raw:
                yield StreamChunk(index=event.index, log_probs=None, completion=text,
                                  raw_completion=raw, completion_tokens=None)
        elif isinstance(event, SequenceFinished):
            text = text_decoders[event.index].decode(b"", final=True)
            raw = raw_decoders[event.index].decode(b"", final=True) if plan.include_raw_completion else None
            if text or raw is not None:  # with raw_completion, every candidate gets one
                yield StreamChunk(index=event.index, log_probs=None, completion=text,
                                  raw_completion=raw, completion_tokens=None)
            yield StreamSummary(index=event.index, model_version=model_version, finish_reason=event.finish_reason)
    yield CompletionSummary(
        optimized_prompt=plan.optimized_prompt,
        num_tokens_prompt_total=plan.num_tokens_prompt_total,
        num_tokens_generated=generated,
    )


def fold(items: Iterable[CompletionResponseStreamItem]) -> CompletionResponse:
    """The CompletionResponse that a stream adds up to."""
    texts: Dict[int, List[str]] = {}
    raws: Dict[int, List[str]] = {}
    reasons: Dict[int, str] = {}
    model_version = ""
    summary: Optional[CompletionSummary] = None
    for item in items:
        if isinstance(item, StreamChunk):
            texts.setdefault(item.index, []).append(item.completion)
            if item.raw_completion is not None:
                raws.setdefault(item.index, []).append(item.raw_completion)
        elif isinstance(item, StreamSummary):
            reasons[item.index] = item.finish_reason
            model_version = item.model_version
        elif isinstance(item, CompletionSummary):
            summary = item
    if summary is None:
        raise RuntimeError("the completion stream ended without its CompletionSummary")
    completions = [
        CompletionResult(
            completion="".join(texts.get(index, [])),
            raw_completion="".join(raws[index]) if index in raws else None,
            finish_reason=reasons[index],
        )
        for index in sorted(reasons)
    ]
    return CompletionResponse(
        model_version=model_version,
        completions=completions,
        num_tokens_prompt_total=summary.num_tokens_prompt_total,
        num_tokens_generated=summary.num_tokens_generated,
        optimized_prompt=summary.optimized_prompt,
    )
