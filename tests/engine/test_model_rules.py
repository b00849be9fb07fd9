"""The validation rules that need the model (vocabulary, context, sequence limit), through the
Client: a ValueError naming the field, and the engine keeps serving."""

import pytest

from edgecomplete import CompletionRequest, Image, InvalidRequest, Prompt, UnknownModelError

from ..conftest import MODEL

PROMPT = Prompt.from_text("Hello")


def test_a_bad_request_fails_through_the_client_before_any_work(client, engine):
    before = engine.stats()["prompt_tokens_evaluated"]
    with pytest.raises(InvalidRequest) as error:
        client.complete(CompletionRequest(prompt=PROMPT, top_p=7), model=MODEL)
    assert error.value.field == "top_p"
    assert engine.stats()["prompt_tokens_evaluated"] == before


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
