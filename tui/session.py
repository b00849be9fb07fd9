"""The UI's record of work: chat conversations and playground sessions, with the exact
CompletionRequest / CompletionResponse JSON of every generation (so a run can be replayed), and
their Markdown and JSON exports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

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
    stopped: bool = False  # stopped before its end (Esc, Enter, a new conversation)
    images: List[str] = field(default_factory=list)  # a user message's images, base64 (as sent)

    def completions(self) -> List[Mapping[str, Any]]:
        return list((self.response or {}).get("completions", []))

    def tokens(self) -> Optional[List[str]]:
        completions = self.completions()
        return completions[self.chosen].get("completion_tokens") if completions else None

    def log_probs(self) -> Optional[List[Mapping[str, float]]]:
        completions = self.completions()
        return completions[self.chosen].get("log_probs") if completions else None

    def kept_until(self, index: int, text: str) -> Tuple[List[str], Optional[List[Mapping[str, float]]]]:
        """The tokens (and their log-probs) a branch at token `index` keeps: those before it, then
        `text` in its place (with the distribution it was chosen from)."""
        tokens, log_probs = self.tokens() or [], self.log_probs()
        kept_log_probs = log_probs[:index] + [log_probs[index]] if log_probs and index < len(log_probs) else None
        return tokens[:index] + [text], kept_log_probs

    @property
    def ending(self) -> Optional[str]:
        """Why a reply ended short: "stopped", or "cut at maximum_tokens"; None if it ended."""
        if self.stopped:
            return "stopped"
        completions = self.completions()
        if completions and completions[self.chosen].get("finish_reason") == "maximum_tokens":
            return "cut at maximum_tokens"
        return None


def with_prefix(response: Dict[str, Any], text: str, tokens: Optional[List[str]],
                log_probs: Optional[List[Mapping[str, float]]]) -> Dict[str, Any]:
    """A response generated after `text` (a branch point, a reply continued) as the whole reply:
    every completion with the text in front, and the tokens and log-probs that made it."""
    completions = []
    for completion in response.get("completions", []):
        completion = dict(completion, completion=text + (completion.get("completion") or ""))
        if tokens is not None and completion.get("completion_tokens") is not None:
            completion["completion_tokens"] = list(tokens) + list(completion["completion_tokens"])
        if log_probs is not None and completion.get("log_probs") is not None:
            completion["log_probs"] = list(log_probs) + list(completion["log_probs"])
        completions.append(completion)
    return dict(response, completions=completions)


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
                 "chosen": t.chosen, "stopped": t.stopped, **({"images": t.images} if t.images else {})}
                for t in self.turns
            ],
        }

    @staticmethod
    def from_json(data: Any) -> "Session":
        """A session from its JSON export; ValueError saying what is wrong with anything else."""
        if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"not an edgecomplete session export (format {found!r}, expected {EXPORT_FORMAT!r})")

        def field_(mapping: Mapping, name: str, kind: Any, default: Any = None, where: str = "") -> Any:
            value = mapping.get(name, default)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                kinds = kind if isinstance(kind, tuple) else (kind,)
                allowed = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise ValueError(f"{where}{name!r} must be {allowed}, got {type(value).__name__}")
            return value

        kind = field_(data, "kind", str)
        if kind not in ("chat", "playground"):
            raise ValueError(f"'kind' must be 'chat' or 'playground', got {kind!r}")
        turns = []
        for i, t in enumerate(field_(data, "turns", list, [])):
            where = f"turns[{i}]: "
            if not isinstance(t, Mapping):
                raise ValueError(f"turns[{i}] must be an object")
            role = field_(t, "role", str, where=where)
            if role not in ("user", "assistant"):
                raise ValueError(f"{where}'role' must be 'user' or 'assistant', got {role!r}")
            images = field_(t, "images", list, [], where)
            if not all(isinstance(image, str) for image in images):
                raise ValueError(f"{where}'images' must be a list of base64 strings")
            turns.append(Turn(role, field_(t, "content", str, where=where), field_(t, "request", (dict, type(None)), where=where),
                              field_(t, "response", (dict, type(None)), where=where), field_(t, "chosen", int, 0, where),
                              field_(t, "stopped", bool, False, where), list(images)))
        return Session(
            kind=kind,
            model=field_(data, "model", str),
            title=field_(data, "title", str, ""),
            system_prompt=field_(data, "system_prompt", str, ""),
            params=dict(field_(data, "params", dict, {})),
            buffer=field_(data, "buffer", str, ""),
            turns=turns,
        )

    def to_markdown(self) -> str:
        lines = [f"# {self.display_title()}", "", f"Model: `{self.model}`", ""]
        if self.system_prompt:
            lines += ["## System", "", self.system_prompt, ""]
        if self.kind == "playground":
            lines += ["## Text", "", self.buffer, ""]
        for turn in self.turns:
            lines += [f"## {turn.role.capitalize()}", "", turn.content, ""]
            lines += [f"_[image {i + 1}: {image_size(image)}]_" for i, image in enumerate(turn.images)]
            lines += [""] if turn.images else []
            if turn.ending:
                lines += [f"_({turn.ending})_", ""]
            score = mean_log_prob(turn.log_probs(), turn.tokens())
            if score is not None:
                lines += [f"_mean log-prob {score:.3f} (p ≈ {math.exp(score):.2f} per token)_", ""]
        return "\n".join(lines)


def image_size(base_64: str) -> str:
    """"640x480 PNG" of a base64 image, or what is wrong with it."""
    import base64
    import binascii
    import io

    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(base64.b64decode(base_64))) as picture:
            return f"{picture.width}x{picture.height} {picture.format}"
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError):
        return "not a readable image"
