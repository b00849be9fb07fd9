"""Every model-independent validation rule of SPEC.md: a ValueError naming the field, before any
work. (The rules that need the model: tests/engine/test_model_rules.py.)"""

import pytest

from edgecomplete import (
    CompletionRequest,
    InvalidRequest,
    Prompt,
    Text,
    TextControl,
    TokenControl,
    Tokens,
    check_request,
)

PROMPT = Prompt.from_text("Hello")


@pytest.mark.parametrize(
    "fields,field,allowed",
    [
        ({"temperature": -0.1}, "temperature", ">= 0"),
        ({"temperature": float("nan")}, "temperature", ">= 0"),
        ({"top_k": -1}, "top_k", "[0, 2147483647]"),
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
        ({"n": 0}, "n", "[1, 2147483647]"),
        ({"n": 3, "best_of": 2}, "best_of", "[n (3), 2147483647]"),
        ({"log_probs": -1}, "log_probs", "[0, 20]"),
        ({"log_probs": 21}, "log_probs", "[0, 20]"),
        ({"maximum_tokens": -1}, "maximum_tokens", "[0, 2147483647]"),
        ({"minimum_tokens": -1}, "minimum_tokens", "[0, 2147483647]"),
        ({"minimum_tokens": 5, "maximum_tokens": 4}, "minimum_tokens", "<= maximum_tokens (4)"),
        ({"sequence_penalty_min_length": 1}, "sequence_penalty_min_length", "[2, 2147483647]"),
        ({"sequence_penalty_min_length": 2**63}, "sequence_penalty_min_length", "[2, 2147483647]"),  # crossed into C
        ({"top_k": 2**31}, "top_k", "[0, 2147483647]"),
        ({"minimum_tokens": 2**40, "maximum_tokens": 2**41}, "maximum_tokens", "[0, 2147483647]"),
        ({"n": 2**64}, "n", "[1, 2147483647]"),
        ({"logit_bias": {-1: 1.0}}, "logit_bias", "token ids"),
        ({"logit_bias": {5: float("inf")}}, "logit_bias", "finite number"),
        ({"stop_sequences": [""]}, "stop_sequences", "empty strings"),
        ({"stop_sequences": "\n"}, "stop_sequences", "list of strings"),
        ({"penalty_exceptions": [""]}, "penalty_exceptions", "empty strings"),
        ({"echo": "yes"}, "echo", "true or false"),
        ({"seed": 1.5}, "seed", "integer"),
        ({"steering_concepts": ["abc"]}, "steering_concepts", "is not a concept id (64 hex digits)"),
        ({"steering_concepts": ["a" * 64], "steering_strengths": {"b" * 64: 1.0}}, "steering_strengths",
         "is not one of steering_concepts"),
        ({"steering_concepts": ["a" * 64], "steering_strengths": {"a" * 64: float("nan")}}, "steering_strengths",
         "must be a number in [-10.0, 10.0]"),
        ({"prompt": Prompt([Text("x", [TextControl(0, 1, 2.0)])])}, "prompt", "attention controls"),
        ({"prompt": Prompt([Tokens([1, 2], [TokenControl(0, 0.5)])])}, "prompt", "attention controls"),
        ({"prompt": Prompt([Tokens([-4], [])])}, "prompt", "in [0, 2147483647]"),
        ({"prompt": "Hello"}, "prompt", "must be a Prompt"),
    ],
)
def test_rule_names_the_field_and_what_is_allowed(fields, field, allowed):
    values = {"prompt": PROMPT, "maximum_tokens": 5, **fields}
    with pytest.raises(InvalidRequest) as error:
        check_request(CompletionRequest(**values))
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")
    assert allowed in str(error.value)
