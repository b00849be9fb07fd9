"""Modal screens, one per module: the model picker (with pulling), the session picker, the
steering screen (concepts on or off, new ones from pairs), the token inspector (alternatives and
"branch here"), and a one-line text prompt. Each gives its answer
back through `dismiss`; none reaches into the app."""

from .model_picker import ModelPicker
from .session_picker import SessionPicker
from .steering_picker import SteeringPicker
from .text_prompt import TextPrompt
from .token_inspector import BranchChoice, TokenInspector

__all__ = ["BranchChoice", "ModelPicker", "SessionPicker", "SteeringPicker", "TextPrompt", "TokenInspector"]
