"""The engine: llama.cpp model and context (llama.py), the decode loop that serves every request
in shared batches (loop.py), and the outboxes that carry each request's events (outbox.py)."""

from .llama import LlamaModel, check_context_options
from .loop import (
    CandidatesDropped,
    Engine,
    EngineEvent,
    Job,
    PromptEcho,
    SequenceFinished,
    TokenEntry,
    TokenSampled,
    on_llama_thread,
)

__all__ = [
    "CandidatesDropped",
    "Engine",
    "EngineEvent",
    "Job",
    "LlamaModel",
    "PromptEcho",
    "SequenceFinished",
    "TokenEntry",
    "TokenSampled",
    "check_context_options",
    "on_llama_thread",
]
