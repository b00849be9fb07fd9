"""edgecomplete: offline text completion on GGUF models, with the Aleph Alpha completion API.

    from edgecomplete import Client, CompletionRequest, Prompt

    client = Client()
    request = CompletionRequest(prompt=Prompt.from_text("The future of AI is"), maximum_tokens=50)
    print(client.complete(request, model="smollm2-135m").completions[0].completion)
"""

from .backend import Backend, BusyError
from .chat import (
    ChatRequest,
    ChatResponse,
    ChatStreamChunk,
    FinishReason,
    Message,
    Role,
    StreamOptions,
    TextMessage,
    Usage,
)
from .client import AsyncClient, Client
from .completion import (
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamItem,
    CompletionResult,
    CompletionSummary,
    DecodeStats,
    StreamChunk,
    StreamSummary,
    stream_item_from_json,
)
from .evaluation import EvaluationRequest, EvaluationResponse
from .steering import SteeringConceptCreationRequest, SteeringConceptCreationResponse, SteeringPairedExample
from .models import (
    DEFAULT_MODEL,
    ModelError,
    ModelIntegrityError,
    NoChatTemplateError,
    ModelNotPulledError,
    NoSpaceError,
    UnknownModelError,
)
from .prompt import (
    ControlTokenOverlap,
    Cropping,
    Image,
    ImageControl,
    Prompt,
    PromptItem,
    Text,
    TextControl,
    TokenControl,
    Tokens,
)
from .stream import fold as fold_stream
from .tokenization import (
    DetokenizationRequest,
    DetokenizationResponse,
    TokenizationRequest,
    TokenizationResponse,
)
from .plan import is_greedy, with_drawn_seed
from .validation import InvalidRequest, can_stream, candidate_count, check_request, check_sequences

__all__ = [
    "can_stream",
    "candidate_count",
    "check_request",
    "check_sequences",
    "is_greedy",
    "with_drawn_seed",
    "AsyncClient",
    "Backend",
    "BusyError",
    "ChatRequest",
    "ChatResponse",
    "ChatStreamChunk",
    "EvaluationRequest",
    "EvaluationResponse",
    "FinishReason",
    "Message",
    "Role",
    "StreamOptions",
    "SteeringConceptCreationRequest",
    "SteeringConceptCreationResponse",
    "SteeringPairedExample",
    "TextMessage",
    "Usage",
    "Client",
    "CompletionRequest",
    "CompletionResponse",
    "CompletionResponseStreamItem",
    "CompletionResult",
    "CompletionSummary",
    "DecodeStats",
    "ControlTokenOverlap",
    "Cropping",
    "DEFAULT_MODEL",
    "DetokenizationRequest",
    "DetokenizationResponse",
    "Image",
    "ImageControl",
    "InvalidRequest",
    "ModelError",
    "ModelIntegrityError",
    "NoChatTemplateError",
    "ModelNotPulledError",
    "NoSpaceError",
    "Prompt",
    "PromptItem",
    "StreamChunk",
    "StreamSummary",
    "Text",
    "TextControl",
    "TokenControl",
    "TokenizationRequest",
    "TokenizationResponse",
    "Tokens",
    "UnknownModelError",
    "fold_stream",
    "stream_item_from_json",
]
