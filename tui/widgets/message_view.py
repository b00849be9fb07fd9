"""One message of a chat."""

from __future__ import annotations

from rich.console import Group
from rich.markdown import Markdown
from rich.text import Text
from textual.widgets import Static

from ..session import Turn, mean_log_prob
from ..tokens import coloured, shown_tokens
from .drawing import redraw
from .image_preview import half_blocks


class MessageView(Static, can_focus=True):
    """One chat message; an assistant reply with log-probs is coloured by token probability.
    `markdown`: a reply is shown as Markdown (else as its raw text); its view sets it."""

    def __init__(self, turn: Turn, index: int, markdown: bool = True, **kwargs):
        super().__init__("", classes=f"message {turn.role}", **kwargs)
        self.turn = turn
        self.index = index
        self.markdown = markdown

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        """Show the turn as it is now: an assistant reply as Markdown, or as its raw text
        (coloured by token probability where it has log-probs), as `markdown` says."""
        turn = self.turn
        header = Text("you" if turn.role == "user" else "assistant", style="bold")
        tokens = shown_tokens(turn.tokens(), turn.content)
        log_probs = turn.log_probs()
        score = mean_log_prob(log_probs, turn.tokens())
        if score is not None:
            header.append(f"  mean log-prob {score:.2f}", style="dim")
        if turn.ending:
            header.append(f"  ({turn.ending})", style="italic yellow")
        request = turn.request or {}
        if request.get("seed") is not None:
            header.append(f"  seed {request['seed']}", style="dim")  # the reply replays with it
        if turn.role == "assistant" and self.markdown:
            body = Markdown(turn.content)
        elif turn.role == "assistant" and tokens is not None and log_probs:
            body = coloured(tokens, log_probs)
        else:
            body = Text(turn.content)
        previews = [half_blocks(image) for image in turn.images]  # a user message's images, below its text
        redraw(self, Group(header, body, *previews))
