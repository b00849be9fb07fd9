"""From a CompletionRequest to a GenerationPlan: validation, prompt optimizations, tokenization,
and one SamplerConfig per candidate. Nothing is generated here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import List, Optional, Protocol, Tuple

from .completion import CompletionRequest
from .prompt import Prompt, Text, Tokens
from .sampling import SamplerConfig
from .validation import InvalidRequest, candidates, check_against_model, check_request, max_new_tokens


class ModelFacts(Protocol):
    """What planning needs to know of a model (engine.llama.LlamaModel provides it)."""

    vocab_size: int
    context_length: int
    max_sequences: int
    bos: int
    add_bos: bool

    def tokenize(self, text: str, parse_special: bool = True) -> List[int]: ...


@dataclass(frozen=True)
class GenerationPlan:
    """Everything the decode loop needs for one request."""

    prompt_tokens: Tuple[int, ...]
    optimized_prompt: Optional[Prompt]  # set only when optimizations changed the prompt
    n: int  # completions returned
    samplers: Tuple[SamplerConfig, ...]  # one per candidate, in candidate order
    maximum_tokens: int  # per candidate, resolved against the context
    include_raw_completion: bool

    @property
    def num_tokens_prompt_total(self) -> int:
        return len(self.prompt_tokens) * len(self.samplers)


def optimize_prompt(prompt: Prompt) -> Prompt:
    """The API's prompt optimizations: adjacent Text items merge; the first item's leading and the
    last item's trailing whitespace (when they are Text) are stripped."""
    items: list = []
    for item in prompt.items:
        if isinstance(item, Text) and items and isinstance(items[-1], Text):
            items[-1] = Text(items[-1].text + item.text, [])
        else:
            items.append(item)
    if items and isinstance(items[0], Text):
        items[0] = Text(items[0].text.lstrip(), [])
    if items and isinstance(items[-1], Text):
        items[-1] = Text(items[-1].text.rstrip(), [])
    return Prompt([item for item in items if not (isinstance(item, Text) and not item.text)])


def tokenize_prompt(prompt: Prompt, model: ModelFacts) -> List[int]:
    """Text items go through the model's tokenizer, Tokens items are used as given; BOS leads when
    the model asks for it, and an empty prompt is BOS alone."""
    tokens: List[int] = []
    for item in prompt.items:
        if isinstance(item, Text):
            tokens.extend(model.tokenize(item.text))
        elif isinstance(item, Tokens):
            tokens.extend(int(t) for t in item.tokens)
    if model.bos >= 0 and (not tokens or (model.add_bos and tokens[0] != model.bos)):
        tokens.insert(0, model.bos)
    if not tokens:
        raise InvalidRequest("prompt", "the prompt is empty and the model has no BOS token to start from")
    return tokens


def _exception_tokens(request: CompletionRequest, model: ModelFacts) -> Tuple[int, ...]:
    """Tokens never penalised: each penalty exception tokenized as is and with a leading space,
    plus the stop sequences' tokens unless penalty_exceptions_include_stop_sequences is False."""
    texts: List[str] = []
    for text in request.penalty_exceptions or []:
        texts += [text, " " + text]
    if request.penalty_exceptions_include_stop_sequences is not False:
        texts += list(request.stop_sequences or [])
    found = set()
    for text in texts:
        found.update(model.tokenize(text))
    return tuple(sorted(found))


def _not_yet(request: CompletionRequest) -> None:
    unsupported = {
        "best_of": (request.best_of or 1) > 1,
        "log_probs": request.log_probs is not None,
        "echo": request.echo,
        "tokens": request.tokens,
        "sequence_penalty": request.sequence_penalty != 0,
        "completion_bias_inclusion": bool(request.completion_bias_inclusion),
        "completion_bias_exclusion": bool(request.completion_bias_exclusion),
    }
    for field, used in unsupported.items():
        if used:
            raise InvalidRequest(field, "is not supported by this version of edgecomplete yet")


def plan_completion(request: CompletionRequest, model: ModelFacts) -> GenerationPlan:
    """Validate `request` against `model` and resolve it into a GenerationPlan."""
    check_request(request)
    prompt = request.prompt if request.disable_optimizations else optimize_prompt(request.prompt)
    optimized = None if request.disable_optimizations or prompt == request.prompt else prompt
    prompt_tokens = tokenize_prompt(prompt, model)
    n_candidates = candidates(request)
    check_against_model(
        request,
        vocab_size=model.vocab_size,
        context_length=model.context_length,
        max_sequences=model.max_sequences,
        prompt_length=len(prompt_tokens),
    )
    _not_yet(request)
    maximum_tokens = request.maximum_tokens
    if maximum_tokens is None:
        maximum_tokens = max_new_tokens(len(prompt_tokens), model.context_length, n_candidates)

    penalty_context: List[int] = []
    if request.repetition_penalties_include_prompt:
        penalty_context += prompt_tokens
    if request.penalty_bias:
        penalty_context += model.tokenize(request.penalty_bias)
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    base = SamplerConfig(
        temperature=float(request.temperature),
        top_k=request.top_k,
        top_p=float(request.top_p),
        presence_penalty=float(request.presence_penalty),
        frequency_penalty=float(request.frequency_penalty),
        multiplicative_presence=request.use_multiplicative_presence_penalty,
        multiplicative_frequency=request.use_multiplicative_frequency_penalty,
        penalize_completion=request.repetition_penalties_include_completion,
        penalty_context=tuple(penalty_context),
        penalty_exceptions=_exception_tokens(request, model),
        logit_bias={int(t): float(b) for t, b in (request.logit_bias or {}).items()},
        minimum_tokens=request.minimum_tokens,
        stop_sequences=tuple(s.encode("utf-8") for s in request.stop_sequences or []),
        seed=seed,
    )
    samplers = tuple(replace(base, stream=index) for index in range(n_candidates))
    return GenerationPlan(
        prompt_tokens=tuple(prompt_tokens),
        optimized_prompt=optimized,
        n=request.n,
        samplers=samplers,
        maximum_tokens=maximum_tokens,
        include_raw_completion=request.raw_completion or request.tokens or request.log_probs is not None,
    )

