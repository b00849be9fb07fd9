"""The OpenAI-compatible routes: GET models, POST completions, POST chat/completions (the last is
also the Aleph API's chat route: the Aleph client speaks OpenAI's chat format).

A body becomes one CompletionRequest per prompt (`_completion_fields` maps OpenAI's fields onto
the completion API's, and takes the API's other fields as extensions: top_k, minimum_tokens,
completion_bias_inclusion, ...); the answers are folded or streamed from the same stream items
as every other face. OpenAI's conventions: temperature 1 and top_p 1 by default, 0 is greedy;
max_tokens 16 by default on completions, unlimited on chat; the prompt counted once in usage.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import fields
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import chat
from ..completion import (CompletionRequest, CompletionResponse, CompletionResult, CompletionSummary,
                          StreamChunk, StreamSummary)
from ..prompt import Prompt, Text
from ..stream import fold
from ..validation import InvalidRequest, candidate_count, may_fail_at_first_step
from .app import Served, event_stream, openai_error, primed, served_for, sse

DONE = b"data: [DONE]\n\n"

# OpenAI's fields on both routes, and each route's own (accepted; `user` is ignored).
_COMMON = {"model", "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty", "logit_bias",
           "seed", "stream", "stream_options", "user", "max_tokens"}
_COMPLETIONS = _COMMON | {"prompt", "logprobs", "echo", "best_of", "suffix"}
_CHAT = _COMMON | {"messages", "max_completion_tokens", "maximum_tokens", "logprobs", "top_logprobs",
                   "response_format", "tools", "tool_choice", "parallel_tool_calls", "hosting", "tags"}
# The completion API's fields that OpenAI's fields stand for (or that shape its answer): not extensions.
_MAPPED = {"prompt", "maximum_tokens", "temperature", "top_p", "top_k", "n", "best_of", "stop_sequences",
           "presence_penalty", "frequency_penalty", "logit_bias", "log_probs", "echo", "tokens", "seed"}
EXTENSIONS = {f.name for f in fields(CompletionRequest)} - _MAPPED | {"top_k"}
# Error messages name the field the caller sent.
_OPENAI_NAMES = {"maximum_tokens": "max_tokens", "stop_sequences": "stop", "log_probs": "logprobs"}



def _finish(reason: Optional[str]) -> Optional[str]:
    """OpenAI's finish_reason for the completion API's (None while the choice goes on)."""
    return None if reason is None else chat.finish_reason(reason).value


def openai_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/models")
    async def list_models(request: Request):
        served = served_for(request)
        return {"object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "edgecomplete"}
                         for name in served.models]}

    @router.post("/completions")
    async def completions(request: Request):
        served = served_for(request)
        body = await served.body(request)
        return await _Completions(served, body).answer()

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        served = served_for(request)
        body = await served.body(request)
        return await _Chat(served, body).answer()

    return router


# ---- from OpenAI's fields to the completion API's ----------------------------------------------

def _typed(body: Mapping[str, Any], name: str, kinds: Tuple[type, ...], allowed: str) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
        raise InvalidRequest(name, f"must be {allowed}, got {value!r}")
    return value


def _check_fields(body: Mapping[str, Any], own: set) -> None:
    unknown = sorted(set(body) - own - EXTENSIONS)
    if unknown:
        raise InvalidRequest(unknown[0], "is not a field of this API (OpenAI's fields, and the completion API's "
                             f"as extensions: {', '.join(sorted(EXTENSIONS))})")


def _completion_fields(body: Mapping[str, Any], max_tokens_default: Optional[int]) -> Dict[str, Any]:
    """The CompletionRequest fields (all but the prompt) of an OpenAI body."""
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise InvalidRequest("stop", f"must be a string or a list of strings, got {stop!r}")
    bias = _typed(body, "logit_bias", (dict,), "an object of token id -> bias")
    if bias is not None:
        try:
            bias = {int(token): value for token, value in bias.items()}
        except ValueError:
            raise InvalidRequest("logit_bias", f"keys must be token ids, got {list(bias)!r}") from None
    maximum = max_tokens_default
    for name in ("max_tokens", "max_completion_tokens", "maximum_tokens"):
        if name in body:
            maximum = body[name]
    values = {
        **chat.sampling_fields(body.get("temperature"), body.get("top_p"), body.get("top_k")),
        "maximum_tokens": maximum,
        "n": body.get("n", 1),
        "stop_sequences": stop or None,
        "presence_penalty": body.get("presence_penalty", 0.0),
        "frequency_penalty": body.get("frequency_penalty", 0.0),
        "logit_bias": bias,
        "seed": body.get("seed"),
    }
    values.update({name: body[name] for name in EXTENSIONS - {"top_k"} if name in body})
    return values


def _stream_flags(body: Mapping[str, Any]) -> Tuple[bool, bool]:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream", f"must be true or false, got {stream!r}")
    options = _typed(body, "stream_options", (dict,), "an object like {\"include_usage\": true}") or {}
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise InvalidRequest("stream_options.include_usage", f"must be true or false, got {include_usage!r}")
    return stream, include_usage


def _renamed(error: InvalidRequest) -> InvalidRequest:
    """The completion API's error, naming the OpenAI field the caller sent."""
    name = _OPENAI_NAMES.get(error.field)
    if name is None:
        return error
    return InvalidRequest(name, str(error).removeprefix(f"{error.field}: "))


# ---- one answer -------------------------------------------------------------------------------

class _Answer:
    """One OpenAI request: its completion requests (one per prompt), started together after
    every one is validated, then folded into one JSON answer or merged into one event stream."""

    object_name = chunk_name = id_prefix = ""  # OpenAI's names of the answer, of a streamed chunk, of the id

    def __init__(self, served: Served, body: Dict[str, Any]):
        self.served, self.body = served, body
        self.id = f"{self.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.text_offsets: Dict[int, int] = {}  # per streamed choice: where its next text starts

    async def requests(self) -> List[CompletionRequest]:
        raise NotImplementedError

    async def answer(self):
        self.model = self.served.model(self.body)
        self.stream, self.include_usage = _stream_flags(self.body)
        try:
            requests = await self.requests()
            started = []
            try:
                for request in requests:  # each validated before anything is sent
                    started.append(await self.served.backend.astream(request, self.model, streamed=self.stream))
                for index, items in enumerate(list(started)):  # the first step, where it can fail
                    if self.stream and may_fail_at_first_step(requests[index]):
                        started[index] = await primed(items)  # closes `items` when it fails
            except BaseException:
                for items in started:
                    await items.aclose()
                raise
        except InvalidRequest as error:
            raise _renamed(error) from None
        self.requests_sent = requests
        self.candidates = [candidate_count(request) for request in requests]
        if not self.stream:
            responses = await asyncio.gather(*(_folded(items) for items in started))
            return JSONResponse(self.whole(responses))
        return event_stream(self.served, self.events(started), lambda error: sse(openai_error(error)))

    def chunk(self, choices: List[Dict[str, Any]], usage: Optional[Dict[str, int]] = None) -> bytes:
        value: Dict[str, Any] = {"id": self.id, "object": self.chunk_name, "created": self.created,
                                 "model": self.model, "choices": choices}
        if self.include_usage:
            value["usage"] = usage
        return sse(value)

    def usage(self, summaries: Sequence[Tuple[int, int]]) -> Dict[str, int]:
        """Usage of every prompt's completion: (num_tokens_prompt_total, num_tokens_generated) each."""
        each = [chat.usage(candidates, total, generated)
                for (total, generated), candidates in zip(summaries, self.candidates)]
        prompt, generated = sum(u.prompt_tokens for u in each), sum(u.completion_tokens for u in each)
        return chat.Usage(generated, prompt, prompt + generated).to_json()

    async def events(self, started: List[Any]) -> AsyncIterator[bytes]:
        summaries: Dict[int, Tuple[int, int]] = {}
        width = max(self.requests_sent[0].n, 1)
        async for prompt_index, item in _merged(started):
            if isinstance(item, CompletionSummary):
                summaries[prompt_index] = (item.num_tokens_prompt_total, item.num_tokens_generated)
                continue
            index = prompt_index * width + item.index
            for event in self.stream_events(prompt_index, index, item):
                yield event
        if self.include_usage:
            yield self.chunk([], self.usage([summaries[i] for i in range(len(started))]))
        yield DONE


async def _folded(items) -> CompletionResponse:
    try:
        return fold([item async for item in items])
    finally:
        await items.aclose()


async def _merged(streams: List[Any]) -> AsyncIterator[Tuple[int, Any]]:
    """The items of several streams as they come, each with its stream's index. Closing this
    closes them all (their requests are cancelled)."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield 0, item
        return
    queue: asyncio.Queue = asyncio.Queue(maxsize=len(streams))
    ended = object()

    async def pump(index: int, items) -> None:
        try:
            async for item in items:
                await queue.put((index, item))
            await queue.put((index, ended))
        except Exception as error:  # a failed stream fails the merge
            await queue.put((index, error))

    tasks = [asyncio.create_task(pump(index, items)) for index, items in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is ended:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        for items in streams:
            await items.aclose()


def _legacy_logprobs(tokens: Sequence[str], entries: Sequence[Mapping[str, Optional[float]]],
                     offset: int) -> Dict[str, Any]:
    """OpenAI's legacy logprobs of `tokens` whose text starts at character `offset`: the first
    token of an echoed prompt has none (null), as in OpenAI's answers."""
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {"tokens": list(tokens), "token_logprobs": [entry.get(token) if entry else None
                                                       for token, entry in zip(tokens, entries)],
            "top_logprobs": [dict(entry) if entry else None for entry in entries], "text_offset": offsets}


class _Completions(_Answer):
    """POST /v1/completions: text completions in OpenAI's legacy shape."""

    object_name, chunk_name, id_prefix = "text_completion", "text_completion", "cmpl"

    async def requests(self) -> List[CompletionRequest]:
        body = self.body
        _check_fields(body, _COMPLETIONS)
        if body.get("suffix") not in (None, ""):
            raise InvalidRequest("suffix", "is not supported (no fill-in-the-middle); leave it unset")
        logprobs = _typed(body, "logprobs", (int,), "an integer from 0 to 20")
        echo = _typed(body, "echo", (bool,), "true or false") or False
        self.logprobs = logprobs
        values = _completion_fields(body, max_tokens_default=16)
        values.update(best_of=body.get("best_of"), log_probs=logprobs, echo=echo, tokens=logprobs is not None)
        return [CompletionRequest(prompt=prompt, **values) for prompt in _prompts(body.get("prompt"))]

    def choice(self, index: int, result: CompletionResult, text_start: int) -> Dict[str, Any]:
        logprobs = None
        if self.logprobs is not None:
            logprobs = _legacy_logprobs(result.completion_tokens or [], result.log_probs or [], text_start)
        return {"index": index, "text": result.completion or "", "logprobs": logprobs,
                "finish_reason": _finish(result.finish_reason)}

    def text_start(self, prompt_index: int) -> int:
        """Where the completion's text starts in OpenAI's text offsets: after the prompt unless echoed."""
        request = self.requests_sent[prompt_index]
        first = request.prompt.items[0]
        return 0 if request.echo or not isinstance(first, Text) else len(first.text)

    def whole(self, responses: List[CompletionResponse]) -> Dict[str, Any]:
        choices = []
        for prompt_index, response in enumerate(responses):
            width = len(response.completions)
            for index, result in enumerate(response.completions):
                choices.append(self.choice(prompt_index * width + index, result,
                                           self.text_start(prompt_index)))
        usage = self.usage([(r.num_tokens_prompt_total, r.num_tokens_generated) for r in responses])
        return {"id": self.id, "object": self.object_name, "created": self.created, "model": self.model,
                "choices": choices, "usage": usage}

    def stream_events(self, prompt_index: int, index: int, item) -> List[bytes]:
        if isinstance(item, StreamChunk):
            start = self.text_offsets.get(index, self.text_start(prompt_index))
            result = CompletionResult(log_probs=item.log_probs, completion=item.completion,
                                      completion_tokens=item.completion_tokens)
            self.text_offsets[index] = start + sum(len(t) for t in item.completion_tokens or [])
            return [self.chunk([self.choice(index, result, start)])]
        if isinstance(item, StreamSummary):
            return [self.chunk([{"index": index, "text": "", "logprobs": None,
                                 "finish_reason": _finish(item.finish_reason)}])]
        return []


def _prompts(value: Any) -> List[Prompt]:
    """OpenAI's prompt: a text, token ids, or a list of either (one completion each)."""
    allowed = "a string, a list of token ids, or a list of strings or of token-id lists"

    def one(item: Any) -> Optional[Prompt]:
        if isinstance(item, str):
            return Prompt.from_text(item)
        if isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            return Prompt.from_tokens(item)
        return None

    single = one(value)
    if single is not None:
        return [single]
    if isinstance(value, list) and value:
        prompts = [one(item) for item in value]
        if all(prompt is not None for prompt in prompts):
            return prompts
    raise InvalidRequest("prompt", f"must be {allowed}, got {value!r}"[:300])


class _Chat(_Answer):
    """POST /v1/chat/completions: the conversation through the model's chat template."""

    object_name, chunk_name, id_prefix = "chat.completion", "chat.completion.chunk", "chatcmpl"

    async def requests(self) -> List[CompletionRequest]:
        body = self.body
        _check_fields(body, _CHAT)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise InvalidRequest("messages", f"must be a list of messages, got {messages!r}")
        parsed = [chat.Message.from_json(m, i) for i, m in enumerate(messages)]
        conversation = chat.conversation(parsed)
        chat.refuse_unsupported(body)
        self.logprobs = _typed(body, "logprobs", (bool,), "true or false") or False
        top = _typed(body, "top_logprobs", (int,), "an integer from 0 to 20")
        values = _completion_fields(body, max_tokens_default=None)
        if self.logprobs:
            values.update(log_probs=top or 0, tokens=True)
        rendered = await self.served.client.apply_chat_template(self.model, conversation)
        return [CompletionRequest(prompt=chat.prompt(rendered, parsed), disable_optimizations=True, **values)]

    def logprobs_content(self, tokens: Sequence[str], entries: Sequence[Mapping[str, Optional[float]]]):
        content = []
        for token, entry in zip(tokens, entries):
            content.append({"token": token, "logprob": entry.get(token), "bytes": list(token.encode("utf-8")),
                            "top_logprobs": [{"token": other, "logprob": value, "bytes": list(other.encode("utf-8"))}
                                             for other, value in entry.items()]})
        return {"content": content}

    def whole(self, responses: List[CompletionResponse]) -> Dict[str, Any]:
        (response,) = responses
        choices = []
        for index, result in enumerate(response.completions):
            logprobs = None
            if self.logprobs:
                logprobs = self.logprobs_content(result.completion_tokens or [], result.log_probs or [])
            choices.append({"index": index, "message": {"role": "assistant", "content": result.completion or ""},
                            "logprobs": logprobs, "finish_reason": _finish(result.finish_reason)})
        usage = self.usage([(response.num_tokens_prompt_total, response.num_tokens_generated)])
        return {"id": self.id, "object": self.object_name, "created": self.created, "model": self.model,
                "choices": choices, "usage": usage}

    async def events(self, started: List[Any]) -> AsyncIterator[bytes]:
        # The role first, for every candidate; the Aleph client reads the first choice of each chunk.
        for index in range(self.requests_sent[0].n):
            yield self.chunk([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                               "finish_reason": None}])
        async for event in super().events(started):
            yield event

    def stream_events(self, prompt_index: int, index: int, item) -> List[bytes]:
        if isinstance(item, StreamChunk):
            if not item.completion and not self.logprobs:
                return []
            logprobs = None
            if self.logprobs:
                logprobs = self.logprobs_content(item.completion_tokens or [], item.log_probs or [])
            return [self.chunk([{"index": index, "delta": {"content": item.completion}, "logprobs": logprobs,
                                 "finish_reason": None}])]
        if isinstance(item, StreamSummary):  # in a chunk of its own: the Aleph client drops content beside it
            return [self.chunk([{"index": index, "delta": {}, "logprobs": None,
                                 "finish_reason": _finish(item.finish_reason)}])]
        return []

