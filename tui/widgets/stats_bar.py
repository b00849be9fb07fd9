"""The numbers bar at the bottom of the screen."""

from __future__ import annotations

import os

from textual.widgets import Static

from ..stats import GenerationStats


def gauge(used: int, total: int, width: int = 12) -> str:
    filled = 0 if total <= 0 else min(width, round(width * used / total))
    return "█" * filled + "░" * (width - filled)


class StatsBar(Static):
    """TTFT, tokens/s, prompt and generated tokens, and the context window in use: `stats` as
    the generation updates them, read twice a second (never per token)."""

    def __init__(self, stats: GenerationStats, **kwargs):
        super().__init__("", **kwargs)
        self.stats = stats
        self.model = ""

    def on_mount(self) -> None:
        self.set_interval(0.5, self.show)  # each redraw of the bar costs the model some decode time
        self.show()

    def show(self) -> None:
        s = self.stats
        ttft = "–" if s.time_to_first_token is None else f"{1000 * s.time_to_first_token:.0f} ms"
        rate = "–" if s.tokens_per_second is None else f"{s.tokens_per_second:.0f}"
        used = s.prompt_tokens + s.generated
        state = "generating" if s.running else "ready"
        drafts = "" if s.accepted_per_step is None else f"+{s.accepted_per_step:.1f}"
        model = os.path.basename(self.model) or self.model  # a model given as a path: its file name
        if self.size.width >= 100:
            speculation = f" │ drafts {drafts}/step" if drafts else ""
            text = (f"{model}  {state}  │ TTFT {ttft} │ {rate} tok/s{speculation} │ prompt {s.prompt_tokens} │ "
                    f"generated {s.generated} │ ctx {gauge(used, s.context_length)} {used}/{s.context_length}")
        else:  # 80 columns
            head = f"{model} {'…' if s.running else '✓'}│TTFT {ttft}│{rate} tok/s"
            tail = f"│prompt {s.prompt_tokens}│gen {s.generated}│ctx {gauge(used, s.context_length, 6)} {used}/{s.context_length}"
            speculation = f"│{drafts}/step" if drafts else ""
            text = head + (speculation if len(head + speculation + tail) <= self.size.width else "") + tail
        self.update(text, layout=False)  # one line, always
