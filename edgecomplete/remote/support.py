"""What each remote backend does with each CompletionRequest field: maps it exactly, computes it
from what the backend returns, or refuses it before any request (InvalidRequest naming the field
and the backend). A field left at its default is never refused. README's table is this table.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Dict

from ..completion import CompletionRequest
from ..prompt import Image, Text, Tokens
from ..validation import InvalidRequest

EXACT, COMPUTED = "exact", "computed"
BACKENDS = ("aleph", "openai", "llama-server")


class Refused(str):
    """A field the backend cannot honour; the string says why."""


_OTHER_PENALTIES = Refused("only edgecomplete's and Aleph's samplers have it")
_NOT_SENT = Refused("the backend has no such control")

# field -> backend -> EXACT, COMPUTED or Refused(why). `aleph` (the Aleph Alpha API, e.g. another
# edgecomplete serve) takes every field as it is.
TABLE: Dict[str, Dict[str, str]] = {
    "prompt": {"openai": EXACT, "llama-server": EXACT},  # images and mixed text/tokens: see _prompt
    "maximum_tokens": {"openai": EXACT, "llama-server": EXACT},
    "temperature": {"openai": EXACT, "llama-server": EXACT},
    "top_k": {"openai": EXACT, "llama-server": EXACT},
    "top_p": {"openai": EXACT, "llama-server": EXACT},
    "presence_penalty": {"openai": EXACT, "llama-server": EXACT},
    "frequency_penalty": {"openai": EXACT, "llama-server": EXACT},
    "repetition_penalties_include_prompt": {
        "openai": Refused("OpenAI-compatible servers penalise the completion only"), "llama-server": EXACT},
    "repetition_penalties_include_completion": {
        "openai": Refused("OpenAI-compatible servers always penalise the completion"),
        "llama-server": Refused("llama-server always penalises the completion")},
    "use_multiplicative_presence_penalty": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "use_multiplicative_frequency_penalty": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "penalty_bias": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "penalty_exceptions": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "penalty_exceptions_include_stop_sequences": {"openai": EXACT, "llama-server": EXACT},  # see _penalties
    "best_of": {"openai": COMPUTED, "llama-server": COMPUTED},
    "n": {"openai": EXACT, "llama-server": EXACT},
    "logit_bias": {"openai": EXACT, "llama-server": EXACT},
    "log_probs": {"openai": EXACT, "llama-server": EXACT},
    "stop_sequences": {"openai": EXACT, "llama-server": EXACT},
    "tokens": {"openai": COMPUTED, "llama-server": COMPUTED},
    "disable_optimizations": {"openai": COMPUTED, "llama-server": COMPUTED},
    "minimum_tokens": {"openai": Refused("the OpenAI API has no minimum (vLLM's min_tokens is its own)"),
                       "llama-server": Refused("llama-server has no minimum number of tokens")},
    "echo": {"openai": Refused("not every OpenAI-compatible server echoes (llama-server drops it silently)"),
             "llama-server": Refused("llama-server cannot return the prompt")},
    "sequence_penalty": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "sequence_penalty_min_length": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "use_multiplicative_sequence_penalty": {"openai": _OTHER_PENALTIES, "llama-server": _OTHER_PENALTIES},
    "completion_bias_inclusion": {"openai": _NOT_SENT, "llama-server": _NOT_SENT},
    "completion_bias_inclusion_first_token_only": {"openai": _NOT_SENT, "llama-server": _NOT_SENT},
    "completion_bias_exclusion": {"openai": _NOT_SENT, "llama-server": _NOT_SENT},
    "completion_bias_exclusion_first_token_only": {"openai": _NOT_SENT, "llama-server": _NOT_SENT},
    "contextual_control_threshold": {"openai": _NOT_SENT, "llama-server": _NOT_SENT},
    "control_log_additive": {"openai": _NOT_SENT, "llama-server": _NOT_SENT},
    "raw_completion": {"openai": Refused("the server returns the text without its special tokens"),
                       "llama-server": Refused("the server returns the text without its special tokens")},
    "steering_concepts": {"openai": Refused("steering concepts are edgecomplete's"),
                          "llama-server": Refused("llama-server loads one control vector at start, for every request")},
    "steering_strengths": {"openai": Refused("steering concepts are edgecomplete's"),
                           "llama-server": Refused("steering concepts are edgecomplete's")},
    "seed": {"openai": EXACT, "llama-server": EXACT},
}

_DEFAULTS = {f.name: f.default for f in fields(CompletionRequest) if f.name != "prompt"}


def support(field: str, backend: str) -> str:
    return EXACT if backend == "aleph" else TABLE[field][backend]


def refuse_unsupported(request: CompletionRequest, backend: str) -> None:
    """Raise InvalidRequest for the first field `backend` cannot honour (at a value that matters)."""
    if backend == "aleph":
        return
    for name, default in _DEFAULTS.items():
        status = TABLE[name][backend]
        if isinstance(status, Refused) and getattr(request, name) != default:
            raise InvalidRequest(name, f"the {backend} backend cannot take it ({status}); leave it at "
                                 f"{default!r} or use a local model or the aleph backend")
    _prompt(request, backend)
    _penalties(request, backend)
    if backend == "llama-server" and (request.presence_penalty or request.frequency_penalty) \
            and not request.repetition_penalties_include_prompt:
        raise InvalidRequest("presence_penalty" if request.presence_penalty else "frequency_penalty",
                             "the llama-server backend penalises tokens of the prompt too: set "
                             "repetition_penalties_include_prompt to true (or the penalty to 0)")


def _prompt(request: CompletionRequest, backend: str) -> None:
    kinds = {type(item) for item in request.prompt.items}
    if Image in kinds:
        raise InvalidRequest("prompt", f"the {backend} backend takes no images (its completions API is text "
                             "only); use a local vision model or the aleph backend")
    if backend == "openai" and kinds == {Text, Tokens}:
        raise InvalidRequest("prompt", "the openai backend takes a prompt of text or of token ids, not both")


def _penalties(request: CompletionRequest, backend: str) -> None:
    """The API never penalises the tokens of stop sequences unless told to; a remote server
    penalises every token."""
    penalised = request.presence_penalty or request.frequency_penalty
    if penalised and request.stop_sequences and request.penalty_exceptions_include_stop_sequences is not False:
        raise InvalidRequest("penalty_exceptions_include_stop_sequences",
                             f"the {backend} backend penalises the tokens of stop sequences too: set it to "
                             "false with presence or frequency penalties and stop sequences")


def markdown_table() -> str:
    """The README's table: every field by backend."""
    def cell(status: str) -> str:
        return f"refused: {status}" if isinstance(status, Refused) else status

    lines = ["| field | aleph | openai | llama-server |", "|---|---|---|---|"]
    for name in ["prompt", *_DEFAULTS]:
        lines.append(f"| `{name}` | exact | {cell(TABLE[name]['openai'])} | {cell(TABLE[name]['llama-server'])} |")
    return "\n".join(lines)
