"""The request's fields as the parameter panel edits them: which fields, in which order, what kind
of control each takes, and the text a control shows for a value and the value its text stands
for (errors name the field, as the API's own). The panel itself is tui.widgets.ParamsPanel."""

from __future__ import annotations

import collections.abc
import json
import typing
from dataclasses import MISSING, fields
from typing import Any

from edgecomplete import CompletionRequest, InvalidRequest

_HINTS = typing.get_type_hints(CompletionRequest)
FIELDS = [f for f in fields(CompletionRequest) if f.name != "prompt"]
DEFAULTS = {f.name: f.default for f in FIELDS if f.default is not MISSING}

# Fields shown first; the rest follow in the dataclass's order.
COMMON = ["maximum_tokens", "temperature", "top_k", "top_p", "presence_penalty", "frequency_penalty",
          "stop_sequences", "n", "best_of", "log_probs", "seed", "minimum_tokens"]


def _kind(name: str) -> str:
    hint = _HINTS[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if name == "logit_bias":
        return "bias"
    if base is bool:
        return "tristate" if type(None) in typing.get_args(hint) else "bool"
    if typing.get_origin(base) in (list, collections.abc.Sequence):
        return "list"
    return {int: "int", float: "float", str: "str"}[base]


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _escape(text: str) -> str:
    return text.replace("\n", "\\n").replace("\t", "\\t")


def parse(name: str, text: str) -> Any:
    """The value a control's text stands for; raises InvalidRequest naming the field."""
    kind, text = _kind(name), text.strip()
    optional = type(None) in typing.get_args(_HINTS[name])
    if not text:
        if optional:
            return None
        raise InvalidRequest(name, "a value is required")
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "str":
            return _unescape(text)
        if kind == "list":
            if text.startswith("["):
                value = json.loads(text)
                if not isinstance(value, list):
                    raise ValueError
                return value
            return [_unescape(part.strip()) for part in text.split("|") if part.strip()]
        if kind == "bias":
            if text.startswith("{"):
                return {int(k): float(v) for k, v in json.loads(text).items()}
            pairs = [p.split(":") for p in text.split(",") if p.strip()]
            return {int(k): float(v) for k, v in pairs}
    except (ValueError, TypeError):
        pass
    allowed = {
        "int": "an integer", "float": "a number", "list": 'texts separated by | (or a JSON list)',
        "bias": "token:bias pairs separated by commas (or a JSON object)",
    }[kind]
    raise InvalidRequest(name, f"must be {allowed}, got {text!r}")


_TRISTATE = {"default": None, "true": True, "false": False}  # a tristate Select's values


def render(name: str, value: Any) -> str:
    """The text a control shows for a value."""
    if value is None:
        return ""
    kind = _kind(name)
    if kind == "list":
        return " | ".join(_escape(v) for v in value)
    if kind == "bias":
        return ", ".join(f"{k}:{v}" for k, v in value.items())
    if kind == "str":
        return _escape(value)
    return str(value)
