"""Fuzzed CompletionRequest JSON through the in-process Client on the real model: each body is
parsed (`CompletionRequest.from_json`) and completed, and is refused naming a field or completes
well formed (test_fuzz_bodies.py has the bodies and the rules). Afterwards the engine holds
nothing: no request, no sequence id, no sequence with KV cells."""

import pytest
from hypothesis import given

from .test_fuzz_bodies import (MODEL, Tally, assert_nothing_held, completion_bodies, fuzz_client, fuzz_settings,
                               outcome_in_process, record, reported, scaled)

EXAMPLES = scaled(6000)


@pytest.fixture(scope="module")
def fuzzed(smollm2_path):
    with fuzz_client() as client:
        yield client


def test_fuzzed_requests_in_process(fuzzed, capsys):
    tally = Tally("in-process Client")

    @fuzz_settings(EXAMPLES)
    @given(reported(completion_bodies()))
    def one(drawn):
        body = drawn.value
        record(tally, body, lambda: outcome_in_process(fuzzed, body))

    tally.run([one], capsys)
    assert tally.requests >= EXAMPLES and tally.accepted > EXAMPLES // 5
    assert_nothing_held(fuzzed.backend.engine(MODEL))
