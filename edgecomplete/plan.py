"""From a validated CompletionRequest to a GenerationPlan: prompt optimizations, tokenization,
the rules that need the model, and one SamplerConfig per candidate. Nothing is generated here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, List, Optional, Protocol, Sequence, Tuple

from . import images
from .completion import CompletionRequest
from .prompt import Image, Prompt, Text, Tokens
from .sampling import SamplerConfig
from .engine.kv import max_new_tokens
from .validation import InvalidRequest, candidate_count, check_against_model

if TYPE_CHECKING:
    from .engine.steering import Steering
    from .engine.vision import ImageChunk, ImagePart


class ModelFacts(Protocol):
    """What planning needs to know of a model (engine.llama.LlamaModel provides it)."""

    vocab_size: int
    context_length: int
    max_sequences: int
    bos: int
    add_bos: bool

    def tokenize(self, text: str, parse_special: bool = True) -> List[int]: ...


class Vision(Protocol):
    """What planning needs of a vision projector (engine.vision.Projector provides it)."""

    def parts(self, image: images.PreparedImage) -> List["ImagePart"]: ...


@dataclass(frozen=True)
class ImageSpan:
    """An image chunk in a prompt: its positions start at `start`; in `prompt_tokens` each holds
    `image_token(key)`, so that prefix slots match the same image and no other."""

    start: int
    chunk: "ImageChunk"

    @property
    def end(self) -> int:
        return self.start + self.chunk.positions


def image_token(key: str) -> int:
    """The stand-in of an image's positions among prompt tokens: negative (never a token id)
    and made from the image's hash."""
    return -1 - int(key[:15], 16)


@dataclass(frozen=True)
class GenerationPlan:
    """Everything the decode loop needs for one request."""

    prompt_tokens: Tuple[int, ...]
    optimized_prompt: Optional[Prompt]  # set only when optimizations changed the prompt
    n: int  # completions returned (the best n of the candidates when best_of > n)
    samplers: Tuple[SamplerConfig, ...]  # one per candidate, in candidate order
    maximum_tokens: int  # per candidate, resolved against the context
    include_raw_completion: bool = False
    echo: bool = False
    log_probs: Optional[int] = None
    tokens: bool = False  # return completion_tokens
    ranked: bool = False  # best_of: rank the candidates, return the best n
    steering: Optional["Steering"] = None  # the control vector its decodes run under
    images: Tuple[ImageSpan, ...] = ()  # in prompt order

    @property
    def steering_key(self) -> Tuple:
        """Which control vector its decodes (and KV cells) belong to: () for none."""
        return self.steering.key if self.steering is not None else ()

    @property
    def num_tokens_prompt_total(self) -> int:
        return len(self.prompt_tokens) * len(self.samplers)

    @property
    def scores_prompt(self) -> bool:
        """echo with log_probs: every prompt position needs its logits."""
        return self.echo and self.log_probs is not None

    @property
    def want_token_entries(self) -> bool:
        """Whether the loop must report tokens one by one (completion_tokens or log_probs)."""
        return self.tokens or self.log_probs is not None


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
    return Prompt(items)


def tokenize_prompt(prompt: Prompt, model: ModelFacts,
                    vision: Optional[Vision] = None) -> Tuple[List[int], Tuple[ImageSpan, ...]]:
    """Text items go through the model's tokenizer, Tokens items are used as given, Image items
    become their projector's parts (text tokens and image chunks); BOS leads when the model
    asks for it, and an empty prompt is BOS alone. The tokens, with image_token() at image
    positions, and the image chunks."""
    tokens: List[int] = []
    spans: List[ImageSpan] = []
    for position, item in enumerate(prompt.items):
        if isinstance(item, Text):
            tokens.extend(model.tokenize(item.text))
        elif isinstance(item, Tokens):
            tokens.extend(int(t) for t in item.tokens)
        elif isinstance(item, Image):
            if vision is None:
                raise InvalidRequest("prompt", f"item {position} is an Image, but this model has no vision "
                                     "projector; load it with one (--mmproj) or use a text prompt")
            for part in vision.parts(images.prepare(item, position)):
                if isinstance(part, list):
                    tokens.extend(part)
                else:
                    spans.append(ImageSpan(len(tokens), part))
                    tokens.extend([image_token(part.key)] * part.positions)
    if model.bos >= 0 and (not tokens or (model.add_bos and tokens[0] != model.bos)):
        tokens.insert(0, model.bos)
        spans = [replace(span, start=span.start + 1) for span in spans]
    if not tokens:
        raise InvalidRequest("prompt", "the prompt is empty and the model has no BOS token to start from")
    return tokens, tuple(spans)


def is_greedy(request: CompletionRequest) -> bool:
    """Whether every candidate takes the most likely token at each step (temperature 0, top_k
    <= 1, top_p 0; the C sampler's rule): such a request draws no random numbers, so its seed
    does not matter and all its candidates are alike."""
    return request.temperature == 0 and request.top_k <= 1 and request.top_p == 0


def fresh_seed() -> int:
    """The seed of a request that has none (any integer is a valid seed)."""
    return secrets.randbits(63)


def with_drawn_seed(request: CompletionRequest) -> CompletionRequest:
    """The request with a fresh seed if it samples and has none: what the faces send, so the
    seed is recorded with the request and the completion replays exactly."""
    if request.seed is not None or is_greedy(request):
        return request
    return replace(request, seed=fresh_seed())


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


def plan_completion(request: CompletionRequest, model: ModelFacts, steering: Optional["Steering"] = None,
                    vision: Optional[Vision] = None) -> GenerationPlan:
    """Resolve `request`, which passed `check_request`, into a GenerationPlan for `model`
    (checking the rules that depend on the model), to run under `steering` (its concepts'
    control vector), its images split by `vision` (the model's projector)."""
    prompt = request.prompt if request.disable_optimizations else optimize_prompt(request.prompt)
    optimized = None if request.disable_optimizations or prompt == request.prompt else prompt
    prompt_tokens, spans = tokenize_prompt(prompt, model, vision)
    n_candidates = candidate_count(request)
    check_against_model(
        request,
        vocab_size=model.vocab_size,
        context_length=model.context_length,
        max_sequences=model.max_sequences,
        prompt_length=len(prompt_tokens),
    )
    maximum_tokens = request.maximum_tokens
    if maximum_tokens is None:
        maximum_tokens = max_new_tokens(len(prompt_tokens), model.context_length, n_candidates)

    # The penalised context before the completion: penalty_bias, then the prompt when asked.
    penalty_context: List[int] = model.tokenize(request.penalty_bias) if request.penalty_bias else []
    if request.repetition_penalties_include_prompt:
        penalty_context += [t for t in prompt_tokens if t >= 0]  # an image's positions are no tokens
    seed = request.seed if request.seed is not None else fresh_seed()
    ranked = (request.best_of or 1) > 1
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
        sequence_penalty=float(request.sequence_penalty),
        sequence_min_length=request.sequence_penalty_min_length,
        multiplicative_sequence=request.use_multiplicative_sequence_penalty,
        sequence_context=tuple(penalty_context),
        completion_bias_inclusion=_encoded(request.completion_bias_inclusion),
        inclusion_first_token_only=request.completion_bias_inclusion_first_token_only,
        completion_bias_exclusion=_encoded(request.completion_bias_exclusion),
        exclusion_first_token_only=request.completion_bias_exclusion_first_token_only,
        stop_sequences=_encoded(request.stop_sequences),
        score=ranked,
        log_probs=request.log_probs,
        seed=seed,
    )
    # Candidate i samples as a single-candidate request with seed + i would.
    samplers = tuple(replace(base, seed=(seed + index) % 2**64) for index in range(n_candidates))
    return GenerationPlan(
        prompt_tokens=tuple(prompt_tokens),
        optimized_prompt=optimized,
        n=request.n,
        samplers=samplers,
        maximum_tokens=maximum_tokens,
        include_raw_completion=request.raw_completion or request.tokens or request.log_probs is not None,
        echo=request.echo,
        log_probs=request.log_probs,
        tokens=request.tokens,
        ranked=ranked,
        steering=steering,
        images=spans,
    )


def _encoded(texts: Optional[Sequence[str]]) -> Tuple[bytes, ...]:
    return tuple(text.encode("utf-8") for text in texts or [])

