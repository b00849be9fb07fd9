"""Chat: messages in, the assistant's reply out. Shaped like aleph_alpha_client's chat module
(ChatRequest, Message, ChatResponse, ChatStreamChunk, FinishReason, Usage), whose wire format is
OpenAI's chat completions.

A chat is a completion of the conversation rendered in the model's chat template
(`Backend.apply_chat_template`), sent as rendered; the reply ends at the model's end-of-turn
token. `as_completion` makes that request, `response_from` and `ChatStream` read the reply back,
so a chat runs through the same decode loop as every other request.

Sampling follows the OpenAI convention of this API: temperature defaults to 1 and 0 means
greedy; top_p defaults to 1 (off); top_k 0 is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .completion import (CompletionRequest, CompletionResponse, CompletionResponseStreamItem, CompletionSummary,
                         StreamChunk, StreamSummary)
from .errors import check_unicode, shown
from .prompt import IMAGE_MARKER, Image, Prompt, with_images
from .validation import InvalidRequest


class Role(str, Enum):
    """Who said a message."""

    User = "user"
    Assistant = "assistant"
    System = "system"
    Tool = "tool"


@dataclass(frozen=True)
class Message:
    """One message of a conversation: its role and its content, a string or a list of parts:
    strings (joined) and images (`Image`, or a pillow image as the Aleph client takes them),
    which need a model with a vision projector."""

    role: Role
    content: Union[str, List[Any]]
    tool_call_id: Optional[str] = None  # tool calls: not supported, kept for the Aleph client's shape
    tool_calls: Optional[List[Any]] = None

    def to_json(self) -> Mapping[str, Any]:
        content = self.content
        if not isinstance(content, str):
            content = [{"type": "text", "text": part} if isinstance(part, str)
                       else {"type": "image_url", "image_url": {"url": _data_uri(_image(part))}} for part in content]
        return {"role": Role(self.role).value, "content": content}

    @staticmethod
    def from_json(json: Any, index: int = 0) -> "Message":
        field = f"messages[{index}]"
        if not isinstance(json, Mapping):
            raise InvalidRequest(field, f"must be an object with role and content, got {shown(json)}")
        roles = ", ".join(role.value for role in (Role.System, Role.User, Role.Assistant))
        if json.get("role") not in (Role.System.value, Role.User.value, Role.Assistant.value):
            raise InvalidRequest(f"{field}.role", f"must be one of {roles}, got {shown(json.get('role'))}")
        content = json.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif isinstance(part, Mapping) and part.get("type") == "image_url":
                    parts.append(_from_data_uri(part.get("image_url"), f"{field}.content"))
                else:
                    raise InvalidRequest(f"{field}.content", f"parts must be {{\"type\": \"text\", \"text\": ...}} "
                                         f"or {{\"type\": \"image_url\", ...}}, got {shown(part)}")
            content = parts
        elif not isinstance(content, str):
            raise InvalidRequest(f"{field}.content", f"must be a string or a list of text parts, got {shown(content)}")
        return Message(Role(json["role"]), content)

    @property
    def text(self) -> str:
        """Its text, with IMAGE_MARKER where an image is."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part if isinstance(part, str) else IMAGE_MARKER for part in self.content)

    @property
    def images(self) -> List[Image]:
        return [] if isinstance(self.content, str) else [_image(p) for p in self.content if not isinstance(p, str)]


def _image(part: Any) -> Image:
    """A message's image part as an Image: given as one, or as a pillow image."""
    if isinstance(part, Image):
        return part
    if hasattr(part, "save") and hasattr(part, "size"):
        return Image.from_image(part)
    raise InvalidRequest("messages", f"a message's parts must be strings or images, got {type(part).__name__}")


def _data_uri(image: Image) -> str:
    return f"data:image/png;base64,{image.base_64}" if image.cropping is None else _data_uri(
        Image.from_image(image.to_image().crop((image.cropping.upper_left_x, image.cropping.upper_left_y,
                                                image.cropping.upper_left_x + image.cropping.size,
                                                image.cropping.upper_left_y + image.cropping.size))))


def _from_data_uri(image_url: Any, field: str) -> Image:
    """An image_url part's image: a data URI with base64 data (nothing is fetched or read)."""
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str):
        raise InvalidRequest(field, f"image_url must be {{\"url\": \"data:image/...;base64,...\"}}, got {shown(image_url)}")
    header, _, data = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64")):
        raise InvalidRequest(field, f"image_url: only data: URIs with base64 data are taken (edgecomplete fetches "
                             f"no URL and reads no file), got {url[:40]!r}")
    return Image(data.strip(), None, [])


@dataclass(frozen=True)
class TextMessage:
    """A reply: its role (assistant) and text."""

    role: Role
    content: str
    tool_calls: Optional[List[Any]] = None

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "TextMessage":
        return TextMessage(role=Role(json["role"]), content=json["content"])

    def to_json(self) -> Mapping[str, Any]:
        return {"role": Role(self.role).value, "content": self.content}


@dataclass(frozen=True)
class StreamOptions:
    """include_usage: a Usage item ends the stream."""

    include_usage: bool


@dataclass(frozen=True)
class ChatRequest:
    """A conversation to continue, in the Aleph Alpha client's fields.

    Parameters:
        model (str, required):
            The model, as in the Aleph client (the `model` argument of `chat` decides).
        messages (Sequence[Message | TextMessage], required):
            The conversation: system, user and assistant messages.
        maximum_tokens (int, optional, default None):
            Tokens of the reply at most (None: until the model ends its turn or the context is full).
        temperature (float, optional, default None):
            None is 1; 0 is greedy.
        top_k (int, optional, default None):
            Keep the k most likely tokens (None or 0: off).
        top_p (float, optional, default None):
            Nucleus sampling (None or 1: off).
        stream_options (StreamOptions, optional, default None):
            With include_usage, a streamed reply ends with a Usage item.
        steering_concepts (List[str], optional, default None):
            Ids of steering concepts to apply.
        response_format, tools, tool_choice, parallel_tool_calls (optional, default None):
            Structured output and tool calls: not supported by edgecomplete; refused when set.
        seed (int, optional, default None):
            An edgecomplete field: the seed of the sampled reply (None draws one).
    """

    model: str
    messages: Sequence[Union[Message, TextMessage]]
    maximum_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    stream_options: Optional[StreamOptions] = None
    steering_concepts: Optional[List[str]] = None
    response_format: Optional[Any] = None
    tools: Optional[List[Any]] = None
    tool_choice: Optional[Any] = None
    parallel_tool_calls: Optional[bool] = None
    seed: Optional[int] = None


class FinishReason(str, Enum):
    """Why the reply ended: the model ended its turn or hit a stop ("stop"), or the token limit."""

    Stop = "stop"
    Length = "length"
    ContentFilter = "content_filter"
    ToolCalls = "tool_calls"


@dataclass(frozen=True)
class ChatResponse:
    finish_reason: FinishReason
    message: TextMessage


@dataclass(frozen=True)
class Usage:
    """Token counts: the prompt (the rendered conversation) once, the reply's tokens."""

    completion_tokens: int
    prompt_tokens: int
    total_tokens: int

    def to_json(self) -> Mapping[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True)
class ChatStreamChunk:
    """Text of the reply as it is generated; the first chunk is empty and carries the role."""

    content: str
    role: Optional[Role]
    tool_calls: Optional[List[Any]] = None


ChatStreamItem = Union[ChatStreamChunk, FinishReason, Usage]


# ---- the request as a completion ----------------------------------------------------------------

def sampling_fields(temperature: Optional[float], top_p: Optional[float], top_k: Optional[int]) -> Dict[str, Any]:
    """OpenAI's sampling convention (temperature 1 by default, 0 greedy; top_p 1 off) in the
    completion API's fields (temperature 0 with top_k and top_p off is greedy)."""
    temperature = 1.0 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    top_k = 0 if top_k is None else top_k
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        raise InvalidRequest("temperature", f"must be a number, got {shown(temperature)}")
    if not isinstance(top_p, (int, float)) or isinstance(top_p, bool):
        raise InvalidRequest("top_p", f"must be a number in [0, 1], got {shown(top_p)}")
    if temperature == 0:
        return {"temperature": 0.0, "top_k": 0, "top_p": 0.0}  # greedy, whatever top_k and top_p say
    return {"temperature": _float("temperature", temperature), "top_k": top_k,
            "top_p": 0.0 if top_p == 1 else _float("top_p", top_p)}


def _float(field: str, value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int past any float
        raise InvalidRequest(field, f"must be a finite number, got {shown(value)}") from None


def conversation(messages: Sequence[Union[Message, TextMessage]]) -> List[Dict[str, str]]:
    """The messages as the chat template takes them."""
    if not messages:
        raise InvalidRequest("messages", "must hold at least one message")
    rendered = []
    for message in messages:
        text = message.text if isinstance(message, Message) else message.content
        check_unicode("messages", text)
        rendered.append({"role": Role(message.role).value, "content": text})
    return rendered


UNSUPPORTED = ("response_format", "tools", "tool_choice", "parallel_tool_calls")


def refuse_unsupported(values: Mapping[str, Any]) -> None:
    """Structured output and tool calls (UNSUPPORTED, by name) are refused unless unset (or the
    plain-text response format)."""
    for name in UNSUPPORTED:
        value = values.get(name)
        if value not in (None, [], "none") and not (name == "response_format" and value == {"type": "text"}):
            raise InvalidRequest(name, "structured output and tool calls are not supported by edgecomplete; "
                                 "leave it unset")


def check_supported(request: ChatRequest) -> None:
    refuse_unsupported({name: getattr(request, name) for name in UNSUPPORTED})


def images(messages: Sequence[Union[Message, TextMessage]]) -> List[Image]:
    """The messages' images, in order: what the IMAGE_MARKERs of the rendered text stand for."""
    return [image for message in messages if isinstance(message, Message) for image in message.images]


def prompt(rendered: str, messages: Sequence[Union[Message, TextMessage]]) -> Prompt:
    """The prompt of `rendered` (the conversation in the model's chat template, with an
    IMAGE_MARKER per image) and the messages' images."""
    try:
        return with_images(rendered, images(messages))
    except ValueError as error:
        raise InvalidRequest("messages", f"{error} (a message's text holds the image marker itself)") from None


def as_completion(request: ChatRequest, rendered: str) -> CompletionRequest:
    """The completion of `rendered` (the conversation in the model's chat template) that is the
    reply to `request` (which passed `check_supported`)."""
    return CompletionRequest(
        prompt=prompt(rendered, request.messages), maximum_tokens=request.maximum_tokens,
        **sampling_fields(request.temperature, request.top_p, request.top_k),
        steering_concepts=request.steering_concepts, seed=request.seed,
        disable_optimizations=True,  # the rendered template is sent exactly (its final newline matters)
    )


# ---- the reply ----------------------------------------------------------------------------------

def finish_reason(completion_finish: str) -> FinishReason:
    """The chat's finish reason for a completion's."""
    return FinishReason.Length if completion_finish == "maximum_tokens" else FinishReason.Stop


def usage(candidates: int, num_tokens_prompt_total: int, num_tokens_generated: int) -> Usage:
    """OpenAI's usage counts the prompt once (the completion API counts it per candidate)."""
    prompt = num_tokens_prompt_total // max(candidates, 1)
    return Usage(completion_tokens=num_tokens_generated, prompt_tokens=prompt,
                 total_tokens=prompt + num_tokens_generated)


def response_from(completion: CompletionResponse) -> ChatResponse:
    first = completion.completions[0]
    return ChatResponse(finish_reason=finish_reason(first.finish_reason or ""),
                        message=TextMessage(Role.Assistant, first.completion or ""))


class ChatStream:
    """Turns a completion's stream items into the chat's: the role first, the text as it comes,
    the finish reason, and the usage last when asked for."""

    def __init__(self, include_usage: bool):
        self.include_usage = include_usage

    def start(self) -> List[ChatStreamItem]:
        return [ChatStreamChunk(content="", role=Role.Assistant)]

    def feed(self, item: CompletionResponseStreamItem) -> List[ChatStreamItem]:
        if isinstance(item, StreamChunk):
            return [ChatStreamChunk(content=item.completion, role=None)] if item.completion else []
        if isinstance(item, StreamSummary):
            return [finish_reason(item.finish_reason)]
        if isinstance(item, CompletionSummary) and self.include_usage:
            return [usage(1, item.num_tokens_prompt_total, item.num_tokens_generated)]
        return []
