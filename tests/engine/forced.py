"""Sampling steps decided on purpose, on the real model.

Which token greedy decoding picks depends on the CPU (SIMD kernels and rounding differ, near-ties
flip), so a test must not expect a model's own choice. A logit bias of FORCE makes a token win by
a margin no rounding can overturn; and since a test can read the raw row the sampler saw (the
`sampled_rows` fixture), it can place a rival at a chosen distance from a penalised token and
read off which of the two the sampler picked: the penalty moved the logit by exactly so much.
"""

from edgecomplete import CompletionRequest, Prompt
from edgecomplete.engine import TokenSampled
from edgecomplete.plan import plan_completion

FORCE = 100.0  # far above any logit of these models, far beyond any CPU's rounding


def sampled_tokens(engine, request):
    """The token ids the engine samples for `request` (the same run as the API would make)."""
    plan = plan_completion(request, engine.model)
    return [event.token for event in engine.generate(plan) if isinstance(event, TokenSampled)]


def second_token(engine, sampled_rows, prompt, first, bias, **fields):
    """Sample two tokens after `prompt` (greedy unless `fields` say otherwise): the first is forced
    to `first` (by `bias[first]`, else FORCE; the other tokens of `bias` are excluded from the
    first step only), the second is the token that ends up highest, which the biases of `bias`
    confine to their tokens. Returns that token and the raw logits row it was sampled from."""
    vocabulary = engine.model.vocabulary
    others = [token for token in bias if token != first]
    request = CompletionRequest(
        prompt=Prompt.from_text(prompt), maximum_tokens=2, logit_bias={first: FORCE, **bias},
        completion_bias_exclusion=[vocabulary.piece(t).decode() for t in others] or None,
        completion_bias_exclusion_first_token_only=True, **fields,
    )
    sampled_rows.clear()
    tokens = sampled_tokens(engine, request)
    assert tokens[0] == first, "the first step was not forced"
    assert len(sampled_rows) == 2 and sampled_rows[1].shape[0] == 1
    return tokens[1], sampled_rows[1][0]
