"""The app's widgets, one per module, each drawing one region of the screen and never reaching up
into the app: what they need is handed down to them, what happens in them is posted up as a
message."""

from .candidates import CandidatesView
from .chat_input import ChatInput
from .drawing import redraw
from .live_reply import LiveReply
from .message_view import MessageView
from .params_panel import ParamsPanel
from .playground_buffer import PlaygroundBuffer
from .stats_bar import StatsBar, gauge
from .stream_text import STREAM_RESERVE, StreamText, follow
from .token_view import TokenView

__all__ = ["CandidatesView", "ChatInput", "LiveReply", "MessageView", "ParamsPanel", "PlaygroundBuffer",
           "STREAM_RESERVE", "StatsBar", "StreamText", "TokenView", "follow", "gauge", "redraw"]
