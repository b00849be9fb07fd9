"""The main region of the screen: the two modes, each a view of its session on one generation
base, and the workspace that holds them beside the parameter panel."""

from .chat import ChatView
from .generating import Continuation, GeneratingView
from .playground import PlaygroundView
from .workspace import Workspace

__all__ = ["ChatView", "Continuation", "GeneratingView", "PlaygroundView", "Workspace"]
