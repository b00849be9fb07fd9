"""Completion requests, responses and stream items. Data only.

Field names, order, defaults and JSON shapes follow aleph_alpha_client 11.x, so code written for
the Aleph Alpha API runs unchanged. The fields of ours are `CompletionRequest.seed` and
`CompletionRequest.steering_strengths`.
SPEC.md (shared with the team) defines what each field does; the docstrings below say it briefly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import InvalidRequest, shown
from .prompt import Prompt

# Keys a recorded API request carries besides the request's own fields.
_TRANSPORT_KEYS = {"model", "stream", "hosting", "tags"}


@dataclass(frozen=True)
class CompletionRequest:
    """What to complete and how. Fields in the Aleph Alpha API's order; SPEC.md has every rule.

    Parameters:
        prompt (Prompt, required):
            The prompt to continue: Text and Tokens items (Image only on a model with a vision
            projector).
        maximum_tokens (int, optional, default None):
            Tokens to generate at most. None generates until end of text or a full context.
        temperature (float, optional, default 0.0):
            Divides the logits; higher is more random. 0 with top_k <= 1 and top_p 0 is greedy
            (0 with top_k > 1 or top_p > 0 samples at temperature 1).
        top_k (int, optional, default 0):
            Keep the k most likely tokens (0: off). Applied after temperature, before top_p.
        top_p (float, optional, default 0.0):
            Keep the smallest most-likely set whose probability reaches top_p (0: off).
        presence_penalty (float, optional, default 0.0):
            Lower the logit of every token already in the penalised context by this, once.
            In [-2, 2].
        frequency_penalty (float, optional, default 0.0):
            Lower the logit of a token by this per occurrence in the penalised context. In [-2, 2].
        repetition_penalties_include_prompt (bool, optional, default False):
            The prompt is part of the penalised context.
        use_multiplicative_presence_penalty (bool, optional, default False):
            Divide positive and multiply negative logits by 1 + presence_penalty instead.
        penalty_bias (str, optional, default None):
            Text whose tokens join the penalised context.
        penalty_exceptions (List[str], optional, default None):
            Texts never penalised (each tokenized with and without a leading space).
        penalty_exceptions_include_stop_sequences (bool, optional, default None):
            The stop sequences are never penalised either (None: true).
        best_of (int, optional, default None):
            Generate this many candidates and return the n with the highest mean
            log-probability per token. Cannot be streamed.
        n (int, optional, default 1):
            Completions to return.
        logit_bias (Dict[int, float], optional, default None):
            Token id -> value added to its logit at every step.
        log_probs (int, optional, default None):
            Return the log-probability of each sampled token and of the top log_probs tokens
            (0 to 20).
        stop_sequences (List[str], optional, default None):
            Generation stops when the text contains one; the completion ends right before it.
        tokens (bool, optional, default False):
            Return the generated tokens as strings (completion_tokens).
        disable_optimizations (bool, optional, default False):
            Keep the prompt exactly as given (no merging of adjacent texts, no stripping of
            surrounding whitespace).
        minimum_tokens (int, optional, default 0):
            End of text cannot be generated before this many tokens.
        echo (bool, optional, default False):
            Put the prompt before the completion (with its log-probs when log_probs is set).
        use_multiplicative_frequency_penalty (bool, optional, default False):
            Divide positive and multiply negative logits by (1 + frequency_penalty) ** count instead.
        sequence_penalty (float, optional, default 0.0):
            Lower the logit of the token that continued an earlier occurrence of the last
            sequence_penalty_min_length - 1 tokens. In [-2, 2].
        sequence_penalty_min_length (int, optional, default 2):
            Length of the repeated sequences sequence_penalty looks for (>= 2).
        use_multiplicative_sequence_penalty (bool, optional, default False):
            Apply sequence_penalty multiplicatively.
        completion_bias_inclusion (List[str], optional, default None):
            Generate only one of these strings: generation ends when one is complete.
        completion_bias_inclusion_first_token_only (bool, optional, default False):
            Restrict the first token only.
        completion_bias_exclusion (List[str], optional, default None):
            Never generate these strings.
        completion_bias_exclusion_first_token_only (bool, optional, default False):
            Restrict the first token only.
        contextual_control_threshold (float, optional, default None):
            An attention-control option of the API; accepted, without effect (no attention
            manipulation in the local engine).
        control_log_additive (bool, optional, default True):
            An attention-control option of the API; accepted, without effect.
        repetition_penalties_include_completion (bool, optional, default True):
            The completion generated so far is part of the penalised context.
        raw_completion (bool, optional, default False):
            Also return the completion with special tokens and the stop sequence.
        steering_concepts (List[str], optional, default None):
            Ids of steering concepts to apply.
        seed (int, optional, default None):
            Seed of the random streams (candidate i uses seed + i); None draws a fresh one.
            An edgecomplete field: the same seed replays a completion exactly.
        steering_strengths (Dict[str, float], optional, default None):
            Strength of each steering concept, by id (1: the default; 0: off; negative: toward
            the negative examples; -10 to 10). An edgecomplete field.
    """

    prompt: Prompt
    maximum_tokens: Optional[int] = None
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalties_include_prompt: bool = False
    use_multiplicative_presence_penalty: bool = False
    penalty_bias: Optional[str] = None
    penalty_exceptions: Optional[List[str]] = None
    penalty_exceptions_include_stop_sequences: Optional[bool] = None
    best_of: Optional[int] = None
    n: int = 1
    logit_bias: Optional[Dict[int, float]] = None
    log_probs: Optional[int] = None
    stop_sequences: Optional[List[str]] = None
    tokens: bool = False
    disable_optimizations: bool = False
    minimum_tokens: int = 0
    echo: bool = False
    use_multiplicative_frequency_penalty: bool = False
    sequence_penalty: float = 0.0
    sequence_penalty_min_length: int = 2
    use_multiplicative_sequence_penalty: bool = False
    completion_bias_inclusion: Optional[Sequence[str]] = None
    completion_bias_inclusion_first_token_only: bool = False
    completion_bias_exclusion: Optional[Sequence[str]] = None
    completion_bias_exclusion_first_token_only: bool = False
    contextual_control_threshold: Optional[float] = None
    control_log_additive: Optional[bool] = True
    repetition_penalties_include_completion: bool = True
    raw_completion: bool = False
    steering_concepts: Optional[List[str]] = None
    seed: Optional[int] = None
    steering_strengths: Optional[Dict[str, float]] = None

    def to_json(self) -> Mapping[str, Any]:
        """The request body of the API: every field that is not None."""
        payload: Dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "prompt":
                value = value.to_json()
            elif f.name == "logit_bias":
                value = {str(token): bias for token, bias in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            payload[f.name] = value
        return payload

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "CompletionRequest":
        """Parse an API request body; `model` and `stream` (transport keys) are ignored."""
        if not isinstance(json, Mapping):
            raise InvalidRequest("prompt", f"a completion request is a JSON object, got {shown(json)}")
        known = {f.name for f in fields(CompletionRequest)}
        unknown = sorted(set(json) - known - _TRANSPORT_KEYS, key=str)
        if unknown:
            raise InvalidRequest(str(unknown[0]), f"unknown completion request field(s): "
                                 f"{', '.join(shown(name) for name in unknown[:5])}")
        values = {key: value for key, value in json.items() if key in known}
        if "prompt" not in values:
            raise InvalidRequest("prompt", "a completion request needs a prompt")
        values["prompt"] = Prompt.from_json(values["prompt"])
        if values.get("logit_bias") is not None:
            values["logit_bias"] = _token_keys(values["logit_bias"])
        return CompletionRequest(**values)


def _token_keys(bias: Any) -> Dict[int, Any]:
    """logit_bias as JSON has it (token ids as decimal strings) with int keys; validation checks
    the ids and the values."""
    if not isinstance(bias, Mapping):
        raise InvalidRequest("logit_bias", f"must map token ids to numbers, got {shown(bias)}")
    keyed = {}
    for token, value in bias.items():
        if isinstance(token, str) and token.isascii() and token.isdigit() and len(token) <= 10:
            keyed[int(token)] = value
        elif isinstance(token, int) and not isinstance(token, bool):
            keyed[token] = value
        else:
            raise InvalidRequest("logit_bias", f"keys must be token ids (decimal integers), got {shown(token)}")
    return keyed


def _without_none(payload: Mapping[str, Any]) -> Dict[str, Any]:
    return {key: value for key, value in payload.items() if value is not None}


@dataclass(frozen=True)
class CompletionResult:
    """One completion.

    log_probs: one dict per entry of completion_tokens (token string -> log-probability).
    completion: the generated text, without special tokens, ending before a stop sequence.
    completion_tokens: the generated tokens as strings (with `tokens=True`).
    finish_reason: "maximum_tokens", "end_of_text" or "stop_sequence_reached".
    raw_completion: every generated token's text, special tokens and stop sequence included.
    """

    log_probs: Optional[Sequence[Mapping[str, Optional[float]]]] = None
    completion: Optional[str] = None
    completion_tokens: Optional[Sequence[str]] = None
    finish_reason: Optional[str] = None
    raw_completion: Optional[str] = None

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "CompletionResult":
        return CompletionResult(
            log_probs=json.get("log_probs"),
            completion=json.get("completion"),
            completion_tokens=json.get("completion_tokens"),
            finish_reason=json.get("finish_reason"),
            raw_completion=json.get("raw_completion"),
        )

    def to_json(self, index: Optional[int] = None) -> Mapping[str, Any]:
        """The API's shape: `index` first, then the fields that are set."""
        return _without_none(
            {
                "index": index,
                "log_probs": self.log_probs,
                "completion": self.completion,
                "raw_completion": self.raw_completion,
                "completion_tokens": self.completion_tokens,
                "finish_reason": self.finish_reason,
            }
        )


@dataclass(frozen=True)
class DecodeStats:
    """How the local engine decoded a request: an attribute of CompletionResponse and
    CompletionSummary in Python, not part of their JSON (the Aleph API has no such field; the
    CLI's --json adds it). Remote engines give none. decode_steps: llama_decode steps that sampled a token of its candidates, summed over
    candidates; drafted_tokens: tokens drafted from the request's own text (speculative
    decoding); accepted_drafts: drafts the candidates sampled themselves, each a token that took
    no decode step of its own."""

    decode_steps: int
    drafted_tokens: int
    accepted_drafts: int

    @property
    def accepted_per_step(self) -> float:
        return self.accepted_drafts / self.decode_steps if self.decode_steps else 0.0

    def to_json(self) -> Mapping[str, Any]:
        return {"decode_steps": self.decode_steps, "drafted_tokens": self.drafted_tokens,
                "accepted_drafts": self.accepted_drafts}


@dataclass(frozen=True)
class CompletionResponse:
    """The completions of one request.

    num_tokens_prompt_total: prompt tokens times the number of candidates (max(n, best_of)).
    num_tokens_generated: tokens generated by all candidates together.
    optimized_prompt: the prompt after optimizations, only when they changed it.
    decode_stats: how the local engine decoded it (DecodeStats; not part of the JSON), else None.
    """

    model_version: str
    completions: Sequence[CompletionResult]
    num_tokens_prompt_total: int
    num_tokens_generated: int
    optimized_prompt: Optional[Prompt] = None
    # How it was decoded, not what: equal responses may have taken different steps.
    decode_stats: Optional[DecodeStats] = field(default=None, compare=False)

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "CompletionResponse":
        optimized = json.get("optimized_prompt")
        return CompletionResponse(
            model_version=json["model_version"],
            completions=[CompletionResult.from_json(item) for item in json["completions"]],
            num_tokens_prompt_total=json["num_tokens_prompt_total"],
            num_tokens_generated=json["num_tokens_generated"],
            optimized_prompt=Prompt.from_json(optimized) if optimized else None,
        )

    def to_json(self) -> Mapping[str, Any]:
        return _without_none(
            {
                "completions": [result.to_json(index) for index, result in enumerate(self.completions)],
                "model_version": self.model_version,
                "num_tokens_prompt_total": self.num_tokens_prompt_total,
                "num_tokens_generated": self.num_tokens_generated,
                "optimized_prompt": self.optimized_prompt.to_json() if self.optimized_prompt else None,
            }
        )


@dataclass(frozen=True)
class StreamChunk:
    """Text of completion `index` that has become final (it can no longer be cut by a stop)."""

    index: int
    log_probs: Optional[Sequence[Mapping[str, Optional[float]]]]
    completion: str
    raw_completion: Optional[str]
    completion_tokens: Optional[Sequence[str]]

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "StreamChunk":
        return StreamChunk(
            index=json["index"],
            log_probs=json.get("log_probs"),
            completion=json["completion"],
            raw_completion=json.get("raw_completion"),
            completion_tokens=json.get("completion_tokens"),
        )

    def to_json(self) -> Mapping[str, Any]:
        return _without_none(
            {
                "type": "stream_chunk",
                "index": self.index,
                "log_probs": self.log_probs,
                "completion": self.completion,
                "raw_completion": self.raw_completion,
                "completion_tokens": self.completion_tokens,
            }
        )


@dataclass(frozen=True)
class StreamSummary:
    """Completion `index` has ended, for `finish_reason`."""

    index: int
    model_version: str
    finish_reason: str

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "StreamSummary":
        return StreamSummary(
            index=json["index"], model_version=json["model_version"], finish_reason=json["finish_reason"]
        )

    def to_json(self) -> Mapping[str, Any]:
        return {
            "type": "stream_summary",
            "index": self.index,
            "model_version": self.model_version,
            "finish_reason": self.finish_reason,
        }


@dataclass(frozen=True)
class CompletionSummary:
    """Every completion of the request has ended; the request's token counts."""

    optimized_prompt: Optional[Prompt]
    num_tokens_prompt_total: int
    num_tokens_generated: int
    decode_stats: Optional[DecodeStats] = field(default=None, compare=False)  # local engine only; not in the JSON

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "CompletionSummary":
        optimized = json.get("optimized_prompt")
        return CompletionSummary(
            optimized_prompt=Prompt.from_json(optimized) if optimized else None,
            num_tokens_prompt_total=json["num_tokens_prompt_total"],
            num_tokens_generated=json["num_tokens_generated"],
        )

    def to_json(self) -> Mapping[str, Any]:
        return _without_none(
            {
                "type": "completion_summary",
                "optimized_prompt": self.optimized_prompt.to_json() if self.optimized_prompt else None,
                "num_tokens_prompt_total": self.num_tokens_prompt_total,
                "num_tokens_generated": self.num_tokens_generated,
            }
        )


CompletionResponseStreamItem = Union[StreamChunk, StreamSummary, CompletionSummary]


def stream_item_from_json(json: Mapping[str, Any]) -> CompletionResponseStreamItem:
    """Parse one `data:` event of a completion stream."""
    parsers = {
        "stream_chunk": StreamChunk.from_json,
        "stream_summary": StreamSummary.from_json,
        "completion_summary": CompletionSummary.from_json,
    }
    kind = json.get("type")
    if kind not in parsers:
        raise ValueError(f"unknown stream item type {kind!r}; allowed: {', '.join(parsers)}")
    return parsers[kind](json)
