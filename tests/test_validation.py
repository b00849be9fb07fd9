"""Every validation rule of SPEC.md: a ValueError naming the field, before any work."""

import pytest

from edgecomplete import (
    CompletionRequest,
    Image,
    InvalidRequest,
    Prompt,
    Text,
    TextControl,
    TokenControl,
    Tokens,
    UnknownModelError,
)

from .conftest import MODEL

PROMPT = Prompt.from_text("Hello")


@pytest.mark.parametrize(
    "fields,field,allowed",
    [
        ({"temperature": -0.1}, "temperature", ">= 0"),
        ({"temperature": float("nan")}, "temperature", ">= 0"),
        ({"top_k": -1}, "top_k", ">= 0"),
        ({"top_k": 1.5}, "top_k", "integer"),
        ({"top_p": -0.01}, "top_p", "[0.0, 1.0]"),
        ({"top_p": 1.01}, "top_p", "[0.0, 1.0]"),
        ({"presence_penalty": 2.5}, "presence_penalty", "[-2.0, 2.0]"),
        ({"presence_penalty": -2.5}, "presence_penalty", "[-2.0, 2.0]"),
        ({"frequency_penalty": 3}, "frequency_penalty", "[-2.0, 2.0]"),
        ({"sequence_penalty": -3}, "sequence_penalty", "[-2.0, 2.0]"),
        ({"presence_penalty": -1.0, "use_multiplicative_presence_penalty": True}, "presence_penalty", "1 + presence_penalty must be > 0"),
        ({"frequency_penalty": -1.5, "use_multiplicative_frequency_penalty": True}, "frequency_penalty", "1 + frequency_penalty must be > 0"),
        ({"sequence_penalty": -1.0, "use_multiplicative_sequence_penalty": True}, "sequence_penalty", "1 + sequence_penalty must be > 0"),
        ({"n": 0}, "n", ">= 1"),
        ({"n": 3, "best_of": 2}, "best_of", ">= n (3)"),
        ({"log_probs": -1}, "log_probs", "[0, 20]"),
        ({"log_probs": 21}, "log_probs", "[0, 20]"),
        ({"maximum_tokens": -1}, "maximum_tokens", ">= 0"),
        ({"minimum_tokens": -1}, "minimum_tokens", ">= 0"),
        ({"minimum_tokens": 5, "maximum_tokens": 4}, "minimum_tokens", "<= maximum_tokens (4)"),
        ({"sequence_penalty_min_length": 1}, "sequence_penalty_min_length", ">= 2"),
        ({"logit_bias": {-1: 1.0}}, "logit_bias", "token ids"),
        ({"logit_bias": {5: float("inf")}}, "logit_bias", "finite number"),
        ({"stop_sequences": [""]}, "stop_sequences", "empty strings"),
        ({"stop_sequences": "\n"}, "stop_sequences", "list of strings"),
        ({"penalty_exceptions": [""]}, "penalty_exceptions", "empty strings"),
        ({"echo": "yes"}, "echo", "true or false"),
        ({"seed": 1.5}, "seed", "integer"),
        ({"steering_concepts": ["abc"]}, "steering_concepts", "no steering concepts"),
        ({"prompt": Prompt([Text("x", [TextControl(0, 1, 2.0)])])}, "prompt", "attention controls"),
        ({"prompt": Prompt([Tokens([1, 2], [TokenControl(0, 0.5)])])}, "prompt", "attention controls"),
        ({"prompt": Prompt([Tokens([-4], [])])}, "prompt", ">= 0"),
        ({"prompt": "Hello"}, "prompt", "must be a Prompt"),
    ],
)
def test_rule_names_the_field_and_what_is_allowed(client, fields, field, allowed):
    values = {"prompt": PROMPT, "maximum_tokens": 5, **fields}
    with pytest.raises(InvalidRequest) as error:
        client.complete(CompletionRequest(**values), model=MODEL)
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")
    assert allowed in str(error.value)


def test_model_dependent_rules(client, engine):
    vocab, context, limit = engine.model.vocab_size, engine.model.context_length, engine.model.max_sequences
    cases = [
        ({"logit_bias": {vocab: 1.0}}, "logit_bias", f"vocabulary size {vocab}"),
        ({"prompt": Prompt.from_tokens([1, vocab])}, "prompt", f"vocabulary size {vocab}"),
        ({"maximum_tokens": context}, "maximum_tokens", f"context length {context}"),
        ({"n": limit + 1}, "n", f"sequence limit is {limit}"),
        ({"n": 1, "best_of": limit + 1}, "best_of", f"sequence limit is {limit}"),
        ({"prompt": Prompt([Image.from_bytes(b"\x89PNG")])}, "prompt", "no vision projector"),
        ({"prompt": Prompt.from_tokens([5] * (context + 1))}, "prompt", f"context length {context}"),
    ]
    for fields, field, message in cases:
        values = {"prompt": PROMPT, "maximum_tokens": 5, **fields}
        with pytest.raises(InvalidRequest) as error:
            client.complete(CompletionRequest(**values), model=MODEL)
        assert error.value.field == field, fields
        assert message in str(error.value), str(error.value)


def test_context_message_gives_the_numbers(client, engine):
    context = engine.model.context_length
    with pytest.raises(InvalidRequest) as error:
        client.complete(CompletionRequest(prompt=Prompt.from_tokens([5] * 10), maximum_tokens=context), model=MODEL)
    assert f"prompt (10 tokens) + maximum_tokens ({context})" in str(error.value)
    assert f"at most {context - 10} tokens" in str(error.value)
    fits = client.complete(CompletionRequest(prompt=Prompt.from_tokens([5] * 10), maximum_tokens=0), model=MODEL)
    assert fits.num_tokens_prompt_total == 10


def test_unknown_model_lists_the_known_ones(client):
    with pytest.raises(UnknownModelError) as error:
        client.complete(CompletionRequest(prompt=PROMPT), model="luminous-extended")
    assert "smollm2-135m" in str(error.value) and "gemma-3-270m" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_client_keeps_working_after_bad_requests(client):
    with pytest.raises(InvalidRequest):
        client.complete(CompletionRequest(prompt=PROMPT, top_p=7), model=MODEL)
    response = client.complete(CompletionRequest(prompt=PROMPT, maximum_tokens=3, minimum_tokens=3), model=MODEL)
    assert response.num_tokens_generated == 3
