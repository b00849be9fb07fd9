"""The error every refusal of a request raises, and how a refusal shows the value it refuses.

`InvalidRequest` lives here, below every module that parses or checks a request, so parsing
(`CompletionRequest.from_json`, `Prompt.from_json`) and validation raise the same error.
"""

from __future__ import annotations

import reprlib
from typing import Any


class InvalidRequest(ValueError):
    """A request refused before any work: the message starts with the field and says what is
    allowed; `.field` holds the name for faces that mark the field (HTTP's `param`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class _Short(reprlib.Repr):
    def repr_int(self, value: int, level: int) -> str:
        digits = value.bit_length() * 0.30103
        if digits < 60:
            return repr(value)
        return f"<an integer of about {digits:.0f} digits>"  # repr() stops at 4,300 digits


_SHORT = _Short()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 3, 60, 60, 4, 4


def shown(value: Any) -> str:
    """A short repr for messages: bounded in length and depth, also of values repr() cannot
    show (integers past 4,300 digits, lists nested past the recursion limit)."""
    return _SHORT.repr(value)


def check_unicode(field: str, text: str) -> None:
    """Refuse text that UTF-8 cannot encode: JSON's "\\ud800" escape decodes to an unpaired
    surrogate, which no tokenizer or C string takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequest(field, f"contains an unpaired surrogate (U+{ord(text[error.start]):04X}) at "
                             f"character {error.start}, which is not Unicode text") from None
