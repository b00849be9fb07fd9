"""The request limits that Python validation and the C core both enforce come from one place, the
C header (EC_MAX_LOG_PROBS, EC_MAX_PENALTY): both accept the limit and refuse just past it."""

import numpy as np
import pytest

from edgecomplete import CompletionRequest, InvalidRequest, Prompt, check_request
from edgecomplete._native import lib
from edgecomplete.sampling import MAX_LOG_PROBS, MAX_PENALTY, NativeError, SamplerConfig, Sequence

from .test_sequence_core import VOCAB

PROMPT = Prompt.from_text("Hi")
# The C core reads penalties as float32: the next float32 past the limit.
JUST_ABOVE = float(np.nextafter(np.float32(MAX_PENALTY), np.float32(3)))


def c_accepts(**config) -> bool:
    try:
        Sequence(VOCAB, SamplerConfig(**config))
    except NativeError:
        return False
    return True


def python_accepts(**fields) -> bool:
    try:
        check_request(CompletionRequest(prompt=PROMPT, **fields))
    except InvalidRequest:
        return False
    return True


def test_the_limits_are_the_headers():
    assert MAX_LOG_PROBS == lib.EC_MAX_LOG_PROBS == 20
    assert MAX_PENALTY == lib.EC_MAX_PENALTY == 2


@pytest.mark.parametrize("value,allowed", [(MAX_LOG_PROBS, True), (MAX_LOG_PROBS + 1, False), (0, True)])
def test_log_probs_limit_agrees(value, allowed):
    assert c_accepts(log_probs=value) is allowed
    assert python_accepts(log_probs=value) is allowed


@pytest.mark.parametrize("name,field", [("presence_penalty", "presence_penalty"),
                                        ("frequency_penalty", "frequency_penalty"),
                                        ("sequence_penalty", "sequence_penalty")])
@pytest.mark.parametrize("value,allowed", [
    (MAX_PENALTY, True), (-MAX_PENALTY, True), (JUST_ABOVE, False), (-JUST_ABOVE, False),
])
def test_penalty_limits_agree(name, field, value, allowed):
    assert c_accepts(**{name: value}) is allowed
    assert python_accepts(**{field: value}) is allowed
