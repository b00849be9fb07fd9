"""A few hundred real completions with every feature of the C core (penalties of every kind,
sequence penalty, the stop matcher, completion bias, logit bias, log-probs, best_of, n), drawn
at random but reproducibly. Under `make sanitize` the C extension is built with ASan + UBSan
and any report aborts; in the normal suite they check that every one completes well-formed."""

import random

from edgecomplete import CompletionRequest, InvalidRequest, Prompt

from ..conftest import MODEL

PROMPTS = ["The history of the old harbour town", "def parse(line):\n    ", "Q: What is 2+2?\nA:",
           "Once upon a time", "Ingredients:\n- flour\n-", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"]
COMPLETIONS = 300


def random_request(rng: random.Random) -> CompletionRequest:
    n = rng.choice([1, 1, 2, 3])
    fields = dict(
        prompt=Prompt.from_text(rng.choice(PROMPTS)), maximum_tokens=rng.randint(0, 10), n=n,
        temperature=rng.choice([0.0, 0.7, 1.3]), top_k=rng.choice([0, 1, 5, 40]), top_p=rng.choice([0.0, 0.5, 0.95]),
        presence_penalty=rng.uniform(-2, 2), frequency_penalty=rng.uniform(-2, 2),
        use_multiplicative_presence_penalty=rng.random() < 0.3, use_multiplicative_frequency_penalty=rng.random() < 0.3,
        repetition_penalties_include_prompt=rng.random() < 0.5, repetition_penalties_include_completion=rng.random() < 0.8,
        sequence_penalty=rng.uniform(-1, 1) if rng.random() < 0.5 else 0.0, sequence_penalty_min_length=rng.randint(2, 6),
        penalty_bias=rng.choice([None, "the the the", "x"]), penalty_exceptions=rng.choice([None, ["the"], [" a", "\n"]]),
        stop_sequences=rng.choice([None, ["\n"], [".", " the", "A:"], ["zzzz"] * 50]),
        completion_bias_inclusion=rng.choice([None, [" yes", " no"], [" the harbour"]]),
        completion_bias_exclusion=rng.choice([None, [" the"], ["\n", " a"]]),
        logit_bias=rng.choice([None, {rng.randrange(49152): rng.uniform(-50, 50) for _ in range(rng.randint(1, 20))}]),
        log_probs=rng.choice([None, 0, 3, 20]), tokens=rng.random() < 0.5, raw_completion=rng.random() < 0.5,
        echo=rng.random() < 0.2, seed=rng.randrange(2**64),
    )
    if fields["use_multiplicative_presence_penalty"]:
        fields["presence_penalty"] = abs(fields["presence_penalty"])
    if fields["use_multiplicative_frequency_penalty"]:
        fields["frequency_penalty"] = abs(fields["frequency_penalty"])
    if fields["sequence_penalty"] < 0 and rng.random() < 0.5:
        fields["use_multiplicative_sequence_penalty"] = False
    if rng.random() < 0.25:
        fields["best_of"] = n + rng.randint(0, 2)
    fields["minimum_tokens"] = rng.randint(0, fields["maximum_tokens"])
    return CompletionRequest(**fields)


def test_every_feature_of_the_c_core_in_real_completions(client, engine):
    rng = random.Random(20261205)
    unsatisfiable = 0
    for _ in range(COMPLETIONS):
        request = random_request(rng)
        try:
            response = client.complete(request, MODEL)
        except InvalidRequest as refused:  # constraints that leave no token: said, not crashed
            assert refused.field == "completion_bias_inclusion" and (
                "no token is left" in str(refused) or "every option starts with" in str(refused))
            assert request.completion_bias_inclusion
            unsatisfiable += 1
            continue
        assert len(response.completions) == request.n
        for result in response.completions:
            assert result.finish_reason in ("maximum_tokens", "end_of_text", "stop_sequence_reached")
            if request.log_probs is not None:
                assert result.log_probs is not None
    assert unsatisfiable < COMPLETIONS // 4
    assert engine.stats()["sequence_ids_in_use"] == 0


def test_the_c_core_under_test_is_the_one_asked_for():
    """Under `make sanitize`, the sanitized build (a sanitizer runtime is loaded); otherwise the normal one."""
    import os

    from edgecomplete import _native

    sanitized = os.environ.get("EDGECOMPLETE_SANITIZED_NATIVE")
    assert os.path.abspath(_native.__file__) == os.path.abspath(sanitized or _native.__file__)
    if sanitized:
        assert "libasan" in open("/proc/self/maps").read()
