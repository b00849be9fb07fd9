"""Request validation: every rule of SPEC.md, checked before any work is done.

Each failure raises `InvalidRequest` (a ValueError) whose message starts with the field name and
says what is allowed; `.field` holds the name for user interfaces that mark the field.
`check_request` needs nothing but the request; `check_against_model` adds the rules that depend
on the model (vocabulary, context length, sequence limit).
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Optional, Sequence

from .completion import CompletionRequest
from .errors import InvalidRequest, check_unicode, shown
from .engine.kv import cells_needed, max_new_tokens
from .prompt import Image, Prompt, Text, Tokens
from .sampling import MAX_LOG_PROBS, MAX_PENALTY

PENALTY_RANGE = (-MAX_PENALTY, MAX_PENALTY)  # the C core checks the same limits (edgecomplete.h)




def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


FLOAT32_MAX = 3.4028234663852886e38  # numbers cross into C as 32-bit floats


def _is_number(value: Any) -> bool:
    """A real number (not a bool) that a 32-bit float holds: not NaN, not infinite, not past
    FLOAT32_MAX (an int of any size included)."""
    if not isinstance(value, Real) or isinstance(value, bool):
        return False
    try:
        return abs(float(value)) <= FLOAT32_MAX  # False for NaN
    except OverflowError:
        return False


def _is_token_id(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= INT32_MAX  # llama_token is 32-bit


INT32_MAX = 2**31 - 1  # the C sampler's counts are 32-bit: every integer that crosses into C is checked


def _int_at_least(field: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or not minimum <= value <= INT32_MAX:
        raise InvalidRequest(field, f"must be an integer in [{minimum}, {INT32_MAX}], got {shown(value)}")


def _number_in(field: str, value: Any, low: Optional[float], high: Optional[float]) -> None:
    if not _is_number(value) or (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            allowed = f"a number >= {low}"
            if isinstance(value, Real) and not isinstance(value, bool) and value > low:
                allowed += f" that a 32-bit float holds (at most {FLOAT32_MAX:.2e})"
        else:
            allowed = f"a number in [{low}, {high}]"
        raise InvalidRequest(field, f"must be {allowed}, got {shown(value)}")


def _bool(field: str, value: Any, optional: bool = False) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        raise InvalidRequest(field, f"must be true or false, got {shown(value)}")


def _strings(field: str, value: Any, allow_empty_strings: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidRequest(field, f"must be a list of strings, got {shown(value)}")
    for item in value:
        if not isinstance(item, str):
            raise InvalidRequest(field, f"must contain only strings, got {shown(item)}")
        if not item and not allow_empty_strings:
            raise InvalidRequest(field, "empty strings are not allowed")
        check_unicode(field, item)


def _penalty(field: str, value: Any, multiplicative: bool, flag: str) -> None:
    _number_in(field, value, *PENALTY_RANGE)
    if multiplicative and not 1 + value > 0:
        raise InvalidRequest(field, f"with {flag}, 1 + {field} must be > 0 (got {shown(value)})")


def _check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, Prompt):
        raise InvalidRequest("prompt", f"must be a Prompt, got {type(prompt).__name__}")
    for position, item in enumerate(prompt.items):
        if not isinstance(item, (Text, Tokens, Image)):
            raise InvalidRequest(
                "prompt", f"item {position} is a {type(item).__name__}; allowed: Text, Tokens, Image"
            )
        if item.controls:
            raise InvalidRequest(
                "prompt",
                f"item {position} has attention controls, which the local engine does not support "
                "(it has no attention manipulation); remove the controls",
            )
        if isinstance(item, Text) and not isinstance(item.text, str):
            raise InvalidRequest("prompt", f"item {position}: Text.text must be a string")
        if isinstance(item, Text):
            check_unicode("prompt", item.text)
        if isinstance(item, Tokens):
            for token in item.tokens:
                if not _is_token_id(token):
                    raise InvalidRequest(
                        "prompt", f"item {position}: token ids must be integers in [0, {INT32_MAX}], got {shown(token)}"
                    )


def check_request(request: CompletionRequest, streamed: bool = False) -> None:
    """Every rule that needs no model. Raises InvalidRequest. `streamed`: the caller takes the
    items one by one as they are generated (best_of cannot be: see `can_stream`)."""
    r = request
    _check_prompt(r.prompt)
    if r.maximum_tokens is not None:
        _int_at_least("maximum_tokens", r.maximum_tokens, 0)
    _number_in("temperature", r.temperature, 0.0, None)
    _int_at_least("top_k", r.top_k, 0)
    _number_in("top_p", r.top_p, 0.0, 1.0)
    _penalty("presence_penalty", r.presence_penalty, r.use_multiplicative_presence_penalty,
             "use_multiplicative_presence_penalty")
    _penalty("frequency_penalty", r.frequency_penalty, r.use_multiplicative_frequency_penalty,
             "use_multiplicative_frequency_penalty")
    _penalty("sequence_penalty", r.sequence_penalty, r.use_multiplicative_sequence_penalty,
             "use_multiplicative_sequence_penalty")
    _int_at_least("sequence_penalty_min_length", r.sequence_penalty_min_length, 2)
    for flag in (
        "repetition_penalties_include_prompt", "repetition_penalties_include_completion",
        "use_multiplicative_presence_penalty", "use_multiplicative_frequency_penalty",
        "use_multiplicative_sequence_penalty", "tokens", "disable_optimizations", "echo",
        "raw_completion", "completion_bias_inclusion_first_token_only",
        "completion_bias_exclusion_first_token_only",
    ):
        _bool(flag, getattr(r, flag))
    if r.echo and any(isinstance(item, Image) for item in r.prompt.items):
        raise InvalidRequest("echo", "cannot echo a prompt with Image items (an image has no text or "
                             "tokens to return); set echo to false")
    _bool("penalty_exceptions_include_stop_sequences", r.penalty_exceptions_include_stop_sequences, True)
    _bool("control_log_additive", r.control_log_additive, True)
    if r.penalty_bias is not None and not isinstance(r.penalty_bias, str):
        raise InvalidRequest("penalty_bias", f"must be a string, got {shown(r.penalty_bias)}")
    if r.penalty_bias is not None:
        check_unicode("penalty_bias", r.penalty_bias)
    _strings("penalty_exceptions", r.penalty_exceptions)
    _strings("stop_sequences", r.stop_sequences)
    _strings("completion_bias_inclusion", r.completion_bias_inclusion)
    _strings("completion_bias_exclusion", r.completion_bias_exclusion)
    _strings("steering_concepts", r.steering_concepts)
    _check_completion_bias(r)
    _int_at_least("n", r.n, 1)
    if r.best_of is not None:
        if not _is_int(r.best_of) or not r.n <= r.best_of <= INT32_MAX:
            raise InvalidRequest("best_of", f"must be an integer in [n ({r.n}), {INT32_MAX}], got {shown(r.best_of)}")
    if r.log_probs is not None:
        if not _is_int(r.log_probs) or not 0 <= r.log_probs <= MAX_LOG_PROBS:
            raise InvalidRequest("log_probs", f"must be an integer in [0, {MAX_LOG_PROBS}], got {shown(r.log_probs)}")
    _int_at_least("minimum_tokens", r.minimum_tokens, 0)
    if r.maximum_tokens is not None and r.minimum_tokens > r.maximum_tokens:
        raise InvalidRequest(
            "minimum_tokens",
            f"must be <= maximum_tokens ({r.maximum_tokens}), got {r.minimum_tokens}",
        )
    if r.logit_bias is not None:
        if not isinstance(r.logit_bias, dict):
            raise InvalidRequest("logit_bias", f"must map token ids to numbers, got {shown(r.logit_bias)}")
        for token, bias in r.logit_bias.items():
            if not _is_token_id(token):
                raise InvalidRequest("logit_bias", f"keys must be token ids (integers in [0, {INT32_MAX}]), got {shown(token)}")
            if not _is_number(bias):
                raise InvalidRequest("logit_bias", f"value for token {token} must be a finite number (a 32-bit float), got {shown(bias)}")
    if r.contextual_control_threshold is not None:
        _number_in("contextual_control_threshold", r.contextual_control_threshold, 0.0, 1.0)
    if r.seed is not None and not _is_int(r.seed):
        raise InvalidRequest("seed", f"must be an integer or None, got {shown(r.seed)}")
    if streamed and not can_stream(r):
        raise InvalidRequest(
            "best_of", "cannot be streamed: every candidate must end before the best are chosen; use complete()"
        )
    for concept in r.steering_concepts or ():
        if not is_concept_id(concept):
            raise InvalidRequest("steering_concepts", f"{shown(concept)} is not a concept id (64 hex digits)")
    if r.steering_strengths is not None:
        if not isinstance(r.steering_strengths, dict):
            raise InvalidRequest("steering_strengths", f"must map concept ids to numbers, got {shown(r.steering_strengths)}")
        for concept, strength in r.steering_strengths.items():
            if concept not in (r.steering_concepts or ()):
                raise InvalidRequest("steering_strengths", f"{shown(concept)} is not one of steering_concepts")
            if not _is_number(strength) or not -MAX_STEERING_STRENGTH <= strength <= MAX_STEERING_STRENGTH:
                raise InvalidRequest("steering_strengths", f"strength of {concept[:12]}... must be a number in "
                                     f"[-{MAX_STEERING_STRENGTH}, {MAX_STEERING_STRENGTH}], got {shown(strength)}")


def _check_completion_bias(r: CompletionRequest) -> None:
    """Inclusion options that every path to passes through an excluded string leave nothing to
    generate: refused here, not at the step where no token is left (mid-stream)."""
    if (not r.completion_bias_inclusion or not r.completion_bias_exclusion
            or r.completion_bias_inclusion_first_token_only or r.completion_bias_exclusion_first_token_only):
        return
    if all(any(option.startswith(excluded) for excluded in r.completion_bias_exclusion)
           for option in r.completion_bias_inclusion):
        raise InvalidRequest("completion_bias_inclusion", "every option starts with a string of "
                             "completion_bias_exclusion, so no completion is allowed")


def is_concept_id(value: Any) -> bool:
    """A steering concept's id: the sha256 of its examples, 64 lowercase hex digits."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


MAX_STEERING_STRENGTH = 10.0  # times the default strength: far past where text degenerates


def candidate_count(request: CompletionRequest) -> int:
    """Sequences a request generates: max(n, best_of)."""
    return max(request.n, request.best_of or 1)


def may_fail_at_first_step(request: CompletionRequest) -> bool:
    """Whether the request can still be refused once it runs: completion-bias constraints that
    leave no token are only found when the first token is sampled. (Servers take that step
    before they answer 200, for APIs whose streams have no error event.)"""
    return bool(request.completion_bias_inclusion or request.completion_bias_exclusion)


def can_stream(request: CompletionRequest) -> bool:
    """Whether the request's text can be handed out as it is generated: not with best_of > 1,
    whose candidates are ranked once all have ended."""
    return (request.best_of or 1) <= 1


def check_sequences(request: CompletionRequest, max_sequences: int) -> None:
    """The candidates a request generates fit the engine's sequence limit."""
    wanted = candidate_count(request)
    if wanted > max_sequences:
        field = "best_of" if (request.best_of or 0) > request.n else "n"
        raise InvalidRequest(
            field, f"{wanted} candidates requested; the engine's sequence limit is {max_sequences} (max(n, best_of))"
        )


def check_against_model(
    request: CompletionRequest,
    *,
    vocab_size: int,
    context_length: int,
    max_sequences: int,
    prompt_length: int,
) -> None:
    """The rules that depend on the model; prompt_length is the tokenized prompt's length."""
    r = request
    wanted = candidate_count(r)
    check_sequences(r, max_sequences)
    for position, item in enumerate(r.prompt.items):
        if isinstance(item, Tokens):
            for token in item.tokens:
                if token >= vocab_size:
                    raise InvalidRequest(
                        "prompt", f"item {position}: token id {token} is not below the vocabulary size {vocab_size}"
                    )
    for token in (r.logit_bias or {}):
        if token >= vocab_size:
            raise InvalidRequest("logit_bias", f"token id {token} is not below the vocabulary size {vocab_size}")
    if prompt_length > context_length:
        raise InvalidRequest(
            "prompt", f"the prompt has {prompt_length} tokens, more than the context length {context_length}"
        )
    if r.maximum_tokens is not None:
        limit = max_new_tokens(prompt_length, context_length, wanted)
        fits = (cells_needed(prompt_length, wanted, r.maximum_tokens) <= context_length
                and prompt_length + r.maximum_tokens <= context_length)
        if not fits:
            shared = (
                "" if wanted == 1 else f" with {wanted} candidates sharing the prompt's cells"
                f" (prompt + {wanted} x (maximum_tokens - 1) <= context)"
            )
            raise InvalidRequest(
                "maximum_tokens",
                f"prompt ({prompt_length} tokens) + maximum_tokens ({r.maximum_tokens}) does not fit the "
                f"context length {context_length}{shared}; at most {limit} tokens can be generated",
            )
        if r.minimum_tokens > limit:
            raise InvalidRequest("minimum_tokens", f"must be <= {limit}, the tokens that fit the context")
