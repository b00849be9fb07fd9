"""The engine: llama.cpp model and context (llama.py) and the decode loop (loop.py)."""

from .llama import LlamaModel
from .loop import Engine, EngineEvent, SequenceFinished, TokenSampled

__all__ = ["Engine", "EngineEvent", "LlamaModel", "SequenceFinished", "TokenSampled"]
