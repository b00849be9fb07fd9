"""Generation policy: how the UI turns the parameter panel's values into a request. Kept out of
the views (which fill in the prompt) and the panel (which only checks the values), so both modes
send what the other would, and the rules can be tested without a screen."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from edgecomplete import CompletionRequest, Prompt, candidate_count, with_drawn_seed


def build_request(values: Mapping[str, Any], chat: bool) -> CompletionRequest:
    """The panel's values as a request, its prompt left empty for the view to fill in. Chat
    prompts are sent as rendered (their final newline matters); tokens always come back, for the
    numbers and the token view; several candidates bring log-probs, for their scores. A sampled
    request gets its seed here: recorded with it, every reply replays exactly."""
    fields = dict(values, tokens=True)
    if chat:
        fields["disable_optimizations"] = True
    request = CompletionRequest(prompt=Prompt.from_text(""), **fields)
    if candidate_count(request) > 1 and request.log_probs is None:
        request = replace(request, log_probs=0)
    return with_drawn_seed(request)
