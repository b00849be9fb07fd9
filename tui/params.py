"""The request's fields as the parameter panel edits them: which fields, in which order, and what
kind of control each takes. A control's text is parsed and rendered by edgecomplete.fields, the
schema the CLI's flags come from too (errors name the field, as the API's own). The panel
itself is tui.widgets.ParamsPanel."""

from __future__ import annotations

from typing import Any

from edgecomplete.fields import DEFAULTS, FIELD, REQUEST_FIELDS

FIELDS = REQUEST_FIELDS
__all__ = ["COMMON", "DEFAULTS", "FIELDS", "TRISTATE", "kind", "parse", "render"]

# Fields shown first; the rest follow in the dataclass's order.
COMMON = ["maximum_tokens", "temperature", "top_k", "top_p", "presence_penalty", "frequency_penalty",
          "stop_sequences", "n", "best_of", "log_probs", "seed", "minimum_tokens"]

TRISTATE = {"default": None, "true": True, "false": False}  # a tristate Select's values


def kind(name: str) -> str:
    """"int", "float", "str", "list", "bias", "strengths" (an Input), "bool" (a Checkbox) or "tristate" (a Select)."""
    return FIELD[name].kind


def parse(name: str, text: str) -> Any:
    """The value a control's text stands for; raises InvalidRequest naming the field."""
    return FIELD[name].parse(text)


def render(name: str, value: Any) -> str:
    """The text a control shows for a value."""
    return FIELD[name].render(value)
