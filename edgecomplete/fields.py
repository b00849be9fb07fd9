"""The request-field schema: each CompletionRequest field's kind, default, help, and how it is
typed as text (parse) and shown as text (render). The CLI's flags and the terminal UI's
parameter panel are both made from it, so a field reads the same everywhere.

Help comes from CompletionRequest's docstring (one source: `name (type, optional, default X):`
then the meaning), kinds from its type hints.

Text forms: `\\n`, `\\t` and `\\\\` stand for a newline, a tab and a backslash (the escapes a shell
or a one-line input makes awkward to type); lists are items separated by `|` (`\\|` for a `|`
in an item) or a JSON list; logit_bias is `TOKEN:VALUE` pairs (or `TOKEN=VALUE`) separated by
commas, or a JSON object, and steering_strengths `ID:VALUE` pairs likewise.
"""

from __future__ import annotations

import collections.abc
import json
import re
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, Dict, List, Tuple

from .completion import CompletionRequest
from .validation import InvalidRequest

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "|": "|"}
_ALLOWED = {
    "int": "an integer",
    "float": "a number",
    "list": "texts separated by | (or a JSON list)",
    "bias": "TOKEN:VALUE pairs separated by commas (or a JSON object)",
    "strengths": "ID:VALUE pairs separated by commas (or a JSON object)",
    "bool": "true or false",
    "tristate": "true, false or nothing (the default)",
}
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def unescape(text: str) -> str:
    """`\\n`, `\\t`, `\\\\` (and `\\|`) to the characters they stand for; other backslashes stay."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def escape(text: str) -> str:
    """The inverse of unescape: one line of text that stands for `text`."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _split_items(text: str) -> List[str]:
    """The items of a list's text: split at each `|` that is not escaped, each item stripped of
    the spaces around the separator, then unescaped."""
    items, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "|":
            items.append(text[start:i])
            start = i + 1
        i += 1
    items.append(text[start:])
    return [unescape(item.strip()) for item in items if item.strip()]


def _field_docs() -> Dict[str, str]:
    """name -> meaning, from CompletionRequest's `Parameters:` section."""
    docs: Dict[str, List[str]] = {}
    name = None
    for line in (CompletionRequest.__doc__ or "").splitlines():
        match = re.match(r"^ {8}(\w+) \((.*)\):$", line)
        if match:
            name = match.group(1)
            docs[name] = []
        elif name and line.startswith(" " * 12):
            docs[name].append(line.strip())
        elif line.strip():
            name = None
    return {key: " ".join(lines) for key, lines in docs.items()}


@dataclass(frozen=True)
class RequestField:
    """One CompletionRequest field as a user types it."""

    name: str
    kind: str  # "int" | "float" | "str" | "list" | "bias" | "strengths" | "bool" | "tristate"
    default: Any
    optional: bool  # None is a value (an empty text stands for it)
    doc: str  # the docstring's meaning

    @property
    def help(self) -> str:
        """The doc's first sentence."""
        return re.split(r"(?<=\.)\s", self.doc, maxsplit=1)[0].rstrip(".")

    @property
    def repeatable(self) -> bool:
        """A command-line flag given once per item (lists, logit_bias)."""
        return self.kind in ("list", "bias", "strengths")

    def parse(self, text: str) -> Any:
        """The value `text` stands for; raises InvalidRequest naming the field and the form."""
        text = text.strip()
        if not text:
            if self.optional:
                return None
            raise InvalidRequest(self.name, f"a value is required ({_ALLOWED.get(self.kind, 'text')})")
        try:
            if self.kind == "list" and text.startswith("["):
                value = json.loads(text)
                if isinstance(value, list) and all(isinstance(item, str) for item in value):
                    return value
                raise ValueError
            if self.kind == "bias" and text.startswith("{"):
                return {int(token): float(bias) for token, bias in json.loads(text).items()}
            if self.kind == "strengths" and text.startswith("{"):
                return {str(key): float(value) for key, value in json.loads(text).items()}
            if self.kind == "list":
                return _split_items(text)
            if self.kind in ("bias", "strengths"):
                return dict(self.parse_item(pair) for pair in text.split(",") if pair.strip())
            return self.parse_item(text)
        except (ValueError, TypeError, AttributeError):
            raise InvalidRequest(self.name, f"must be {_ALLOWED.get(self.kind, 'text')}, got {text!r}") from None

    def parse_item(self, text: str) -> Any:
        """One item as a command-line flag gives it: a whole list item, a TOKEN=VALUE pair, or
        the value of a scalar field. Raises ValueError."""
        if self.kind == "bias":
            token, separator, value = text.replace("=", ":", 1).partition(":")
            if not separator:
                raise ValueError(f"not a TOKEN:VALUE pair: {text!r}")
            return int(token), float(value)
        if self.kind == "strengths":
            key, separator, value = text.replace("=", ":", 1).partition(":")
            if not separator:
                raise ValueError(f"not an ID:VALUE pair: {text!r}")
            return key.strip(), float(value)
        if self.kind in ("list", "str"):
            return unescape(text)
        if self.kind == "int":
            return int(text)
        if self.kind == "float":
            return float(text)
        if self.kind in ("bool", "tristate"):
            return _BOOLEANS[text.strip().lower()]
        raise TypeError(self.kind)  # pragma: no cover - a new kind needs a case here

    def render(self, value: Any) -> str:
        """The text `parse` reads back as `value`."""
        if value is None:
            return ""
        if self.kind == "list":
            text = " | ".join(escape(item).replace("|", "\\|") for item in value)
            return json.dumps(list(value), ensure_ascii=False) if text.startswith("[") else text
        if self.kind in ("bias", "strengths"):
            return ", ".join(f"{key}:{value}" for key, value in value.items())
        if self.kind == "str":
            return escape(value)
        if self.kind in ("bool", "tristate"):
            return "true" if value else "false"
        return str(value)


def _kind(hint: Any) -> str:
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    origin = typing.get_origin(base)
    if base is bool:
        return "tristate" if type(None) in args else "bool"
    if origin in (list, collections.abc.Sequence):
        return "list"
    if origin in (dict, collections.abc.Mapping):
        return "bias" if typing.get_args(base)[0] is int else "strengths"
    return {int: "int", float: "float", str: "str"}[base]


def _request_fields() -> Tuple[RequestField, ...]:
    hints = typing.get_type_hints(CompletionRequest)
    docs = _field_docs()
    return tuple(
        RequestField(f.name, _kind(hints[f.name]), None if f.default is MISSING else f.default,
                     type(None) in typing.get_args(hints[f.name]), docs.get(f.name, ""))
        for f in fields(CompletionRequest)
        if f.name != "prompt"
    )


# Every CompletionRequest field but the prompt, in the dataclass's (the API's) order.
REQUEST_FIELDS: Tuple[RequestField, ...] = _request_fields()
FIELD = {f.name: f for f in REQUEST_FIELDS}
DEFAULTS: Dict[str, Any] = {f.name: f.default for f in REQUEST_FIELDS}
