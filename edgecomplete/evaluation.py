"""Evaluation: how likely a model is to produce an expected completion after a prompt. Shaped like
aleph_alpha_client's evaluation module (request, response, JSON beside them).

An evaluation is a completion in disguise: the prompt followed by the expected completion's
tokens, echoed with their log-probabilities and nothing generated (`as_completion`); the result
is read off its last tokens (`response_from`). So it runs on any backend that completes with
echo and log_probs, through the same decode loop as every other request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional, Sequence

from .completion import CompletionRequest, CompletionResponse
from .prompt import Prompt, Tokens
from .validation import InvalidRequest


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate.

    Parameters:
        prompt (Prompt, required):
            The text before the expected completion (Text and Tokens items).
        completion_expected (str, required):
            The text whose likelihood after the prompt is measured; tokenized on its own (no BOS)
            and placed right after the prompt.
        contextual_control_threshold (float, optional, default None):
            An attention-control option of the API; accepted, without effect.
        control_log_additive (bool, optional, default True):
            An attention-control option of the API; accepted, without effect.
    """

    prompt: Prompt
    completion_expected: str
    contextual_control_threshold: Optional[float] = None
    control_log_additive: Optional[bool] = True

    def to_json(self) -> Mapping[str, Any]:
        return {**asdict(self), "prompt": self.prompt.to_json()}

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "EvaluationRequest":
        """Parse an API request body; `model`, `hosting` and `tags` (transport keys) are ignored."""
        unknown = sorted(set(json) - {f.name for f in fields(EvaluationRequest)} - {"model", "hosting", "tags"})
        if unknown:
            raise InvalidRequest(unknown[0], "is not a field of an evaluation request")
        expected = json.get("completion_expected")
        if not isinstance(expected, str):
            raise InvalidRequest("completion_expected", f"must be a string, got {expected!r}")
        threshold = json.get("contextual_control_threshold")
        return EvaluationRequest(prompt=Prompt.from_json(json.get("prompt", "")), completion_expected=expected,
                                 contextual_control_threshold=threshold,
                                 control_log_additive=json.get("control_log_additive", True))


@dataclass(frozen=True)
class EvaluationResponse:
    """The evaluation of one request.

    result: log_probability (the sum over the expected tokens), log_perplexity (its negative),
        log_perplexity_per_token, log_perplexity_per_character, correct_greedy (every expected
        token is the model's most likely one there), token_count, character_count, completion
        (the expected completion).
    num_tokens_prompt_total: prompt tokens plus expected tokens.
    """

    model_version: str
    message: Optional[str]
    result: Dict[str, Any]
    num_tokens_prompt_total: int

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "EvaluationResponse":
        return EvaluationResponse(model_version=json["model_version"], message=json.get("message"),
                                  result=json["result"], num_tokens_prompt_total=json["num_tokens_prompt_total"])

    def to_json(self) -> Mapping[str, Any]:
        return {"model_version": self.model_version, "message": self.message, "result": self.result,
                "num_tokens_prompt_total": self.num_tokens_prompt_total}


def as_completion(request: EvaluationRequest, expected_ids: Sequence[int]) -> CompletionRequest:
    """The completion that scores `expected_ids` (the expected completion's tokens) after the
    prompt: both echoed with each token's log-probability and the most likely token there (so
    log_probs=1), nothing generated."""
    if not expected_ids:
        raise InvalidRequest("completion_expected", "must have at least one token, got an empty text")
    prompt = Prompt(list(request.prompt.items) + [Tokens.from_token_ids(expected_ids)])
    return CompletionRequest(prompt=prompt, maximum_tokens=0, echo=True, log_probs=1, tokens=True,
                             contextual_control_threshold=request.contextual_control_threshold,
                             control_log_additive=request.control_log_additive)


def response_from(request: EvaluationRequest, expected_count: int, completion: CompletionResponse) -> EvaluationResponse:
    """Read the evaluation off the echoed completion of `as_completion`: its last
    `expected_count` tokens are the expected ones. A token's entry holds its own log-probability
    and that of the most likely token (equal when it is the most likely one)."""
    (echoed,) = completion.completions
    tokens = list(echoed.completion_tokens or [])[-expected_count:]
    entries = list(echoed.log_probs or [])[-expected_count:]
    log_probability, correct_greedy = 0.0, True
    for token, entry in zip(tokens, entries):
        if not entry:  # the model's first token: nothing before it to predict it
            raise InvalidRequest("prompt", "must not be empty on this model (it adds no BOS token): "
                                 "the first expected token would have no log-probability")
        own = entry[token]
        log_probability += own
        correct_greedy = correct_greedy and own >= max(value for value in entry.values() if value is not None)
    characters = len(request.completion_expected)
    result = {
        "log_probability": log_probability,
        "log_perplexity": -log_probability,
        "log_perplexity_per_token": -log_probability / expected_count,
        "log_perplexity_per_character": -log_probability / characters,
        "correct_greedy": correct_greedy,
        "token_count": expected_count,
        "character_count": characters,
        "completion": request.completion_expected,
    }
    return EvaluationResponse(model_version=completion.model_version, message=None, result=result,
                              num_tokens_prompt_total=completion.num_tokens_prompt_total)
