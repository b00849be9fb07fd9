"""The UI's record of work: chat conversations and playground sessions, with the exact
CompletionRequest / CompletionResponse JSON of every generation (so a run can be replayed), and
their Markdown and JSON exports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

EXPORT_FORMAT = "edgecomplete-session/1"


@dataclass
class Turn:
    """One message. An assistant turn keeps the request and response that produced it, and which
    of the response's completions is the reply (`chosen`)."""

    role: str  # "user" or "assistant"
    content: str
    request: Optional[Dict[str, Any]] = None
    response: Optional[Dict[str, Any]] = None
    chosen: int = 0

    def completions(self) -> List[Mapping[str, Any]]:
        return list((self.response or {}).get("completions", []))

    def tokens(self) -> Optional[List[str]]:
        completions = self.completions()
        return completions[self.chosen].get("completion_tokens") if completions else None

    def log_probs(self) -> Optional[List[Mapping[str, float]]]:
        completions = self.completions()
        return completions[self.chosen].get("log_probs") if completions else None


def mean_log_prob(log_probs: Optional[List[Mapping[str, float]]], tokens: Optional[List[str]]) -> Optional[float]:
    """Mean log-prob of the chosen tokens (the measure best_of ranks by)."""
    if not log_probs or not tokens:
        return None
    values = [entry.get(token) for entry, token in zip(log_probs, tokens) if entry]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


@dataclass
class Session:
    kind: str  # "chat" or "playground"
    model: str
    title: str = ""
    system_prompt: str = ""
    params: Dict[str, Any] = field(default_factory=dict)  # CompletionRequest fields but prompt
    turns: List[Turn] = field(default_factory=list)  # chat
    buffer: str = ""  # playground text
    id: Optional[int] = None

    def display_title(self) -> str:
        if self.title:
            return self.title
        first = next((t.content for t in self.turns if t.role == "user"), self.buffer)
        words = " ".join(first.split())
        return (words[:40] + "…") if len(words) > 40 else (words or f"New {self.kind}")

    def to_json(self) -> Dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "kind": self.kind,
            "title": self.display_title(),
            "model": self.model,
            "system_prompt": self.system_prompt,
            "params": self.params,
            "buffer": self.buffer,
            "turns": [
                {"role": t.role, "content": t.content, "request": t.request, "response": t.response,
                 "chosen": t.chosen}
                for t in self.turns
            ],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> "Session":
        if data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not an edgecomplete session export (format {data.get('format')!r})")
        return Session(
            kind=data["kind"],
            model=data["model"],
            title=data.get("title", ""),
            system_prompt=data.get("system_prompt", ""),
            params=dict(data.get("params", {})),
            buffer=data.get("buffer", ""),
            turns=[Turn(t["role"], t["content"], t.get("request"), t.get("response"), t.get("chosen", 0))
                   for t in data.get("turns", [])],
        )

    def to_markdown(self) -> str:
        lines = [f"# {self.display_title()}", "", f"Model: `{self.model}`", ""]
        if self.system_prompt:
            lines += ["## System", "", self.system_prompt, ""]
        if self.kind == "playground":
            lines += ["## Text", "", self.buffer, ""]
        for turn in self.turns:
            lines += [f"## {turn.role.capitalize()}", "", turn.content, ""]
            score = mean_log_prob(turn.log_probs(), turn.tokens())
            if score is not None:
                lines += [f"_mean log-prob {score:.3f} (p ≈ {math.exp(score):.2f} per token)_", ""]
        return "\n".join(lines)
