"""Context lengths at and around llama.cpp's limits: each one works or is refused with an error
naming context_length; the process never aborts (llama.cpp asserts rather than fails, so nothing
it would assert on may reach it)."""

import subprocess
import sys

import pytest

from edgecomplete import Client, CompletionRequest, InvalidRequest, Prompt
from edgecomplete.engine.kv import sequence_ids
from edgecomplete.tokenization import TokenizationRequest

from ..conftest import MODEL

CONTEXT_LENGTHS = [1, 2, 8, 16, 17, 18, 19, 32, 64, 128, 256]
SHORT = "Hi"
LONG = " ".join(f"word{i}" for i in range(70))  # about 200 tokens
MINIMUM = sequence_ids(16)  # the default max_sequences


@pytest.fixture(scope="module")
def prompt_lengths(client):
    def length(text):
        return len(client.tokenize(TokenizationRequest(text, tokens=False, token_ids=True), MODEL).token_ids) + 1
    return {SHORT: length(SHORT), LONG: length(LONG)}  # + BOS


def expected_refusal(context_length, prompt_length):
    if context_length < MINIMUM:
        return "context_length"
    if prompt_length + 3 > context_length:  # prompt and completion fit the context
        return "prompt" if prompt_length > context_length else "maximum_tokens"
    return None


@pytest.mark.parametrize("context_length", CONTEXT_LENGTHS)
@pytest.mark.parametrize("text", [SHORT, LONG], ids=["short", "long"])
def test_cli_completes_or_refuses_every_context_length(prompt_lengths, context_length, text):
    run = subprocess.run(
        [sys.executable, "-m", "edgecomplete", "complete", text, "--context-length", str(context_length),
         "--max-tokens", "3"],
        capture_output=True, text=True, timeout=120,
    )
    refusal = expected_refusal(context_length, prompt_lengths[text])
    if refusal is None:
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""
    else:
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith(f"edgecomplete: error: {refusal}: ")
        assert "context length" in run.stderr or "context_length" in run.stderr
        assert "Traceback" not in run.stderr and "GGML_ASSERT" not in run.stderr


@pytest.mark.parametrize("context_length", CONTEXT_LENGTHS)
def test_api_completes_or_refuses_every_context_length(smollm2_path, prompt_lengths, context_length):
    if context_length < MINIMUM:
        with pytest.raises(InvalidRequest, match=rf"context_length: must be an integer >= {MINIMUM}") as error:
            Client(context_length=context_length)
        assert isinstance(error.value, ValueError) and error.value.field == "context_length"
        return
    with Client(context_length=context_length) as client:
        assert client.model_info(MODEL)["context_length"] == context_length  # not llama.cpp's rounded cache
        for text in (SHORT, LONG):
            request = CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=3)
            refusal = expected_refusal(context_length, prompt_lengths[text])
            if refusal is None:
                response = client.complete(request, model=MODEL)
                assert 1 <= response.num_tokens_generated <= 3
            else:
                with pytest.raises(InvalidRequest, match=f"context length {context_length}") as error:
                    client.complete(request, model=MODEL)
                assert error.value.field == refusal


def test_a_prompt_that_fills_the_context_completes_in_batches_no_larger_than_the_context(smollm2_path, prompt_lengths):
    # The batch is at most the context length (llama.cpp asserts on more): the whole prompt, its
    # logits scored (echo with log_probs), and every candidate's first step fit one batch each.
    context_length = prompt_lengths[LONG] + 4
    with Client(context_length=context_length, max_sequences=4) as client:
        assert client.backend.engine(MODEL).model.batch_size == context_length
        request = CompletionRequest(prompt=Prompt.from_text(LONG), maximum_tokens=2, n=4, temperature=1.0,
                                    seed=1, echo=True, log_probs=0)
        response = client.complete(request, model=MODEL)
        assert len(response.completions) == 4 and response.num_tokens_generated == 8


def test_fewer_sequences_lower_the_minimum_context_length(smollm2_path):
    with Client(context_length=sequence_ids(4), max_sequences=4) as client:
        request = CompletionRequest(prompt=Prompt.from_text(SHORT), maximum_tokens=2, n=4, temperature=1.0)
        assert len(client.complete(request, model=MODEL).completions) == 4
    with pytest.raises(InvalidRequest, match=r"context_length: must be an integer >= 7, got 6"):
        Client(context_length=6, max_sequences=4)


@pytest.mark.parametrize("options,field", [
    ({"context_length": 0}, "context_length"),
    ({"context_length": 64.0}, "context_length"),
    ({"max_sequences": 0}, "max_sequences"),
    ({"max_sequences": 254}, "max_sequences"),
])
def test_options_llama_cpp_cannot_run_are_refused(options, field):
    with pytest.raises(InvalidRequest) as error:
        Client(**options)
    assert error.value.field == field


def test_a_context_longer_than_the_model_was_trained_on_is_refused(smollm2_path):
    with Client(context_length=8193) as client:
        with pytest.raises(InvalidRequest, match="context_length: must be at most 8192") as error:
            client.model_info(MODEL)
    assert error.value.field == "context_length"
