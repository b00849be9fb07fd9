"""No exception on the llama thread leaves a caller waiting: a request the C side cannot take
fails with its error at once, and the engine goes on serving (issue 15's first probe:
sequence_penalty_min_length=2**63 passed validation, then the llama thread raised OverflowError
filling the C struct and the caller waited forever)."""

import threading
from dataclasses import replace

import pytest

from edgecomplete import CompletionRequest, InvalidRequest, Prompt, check_request
from edgecomplete.plan import plan_completion

from ..conftest import MODEL


def generate_on_a_thread(engine, plan):
    """Consume `plan`'s events on a thread of its own, as a caller would: (the started thread,
    a dict that gets the error it ends with, if any)."""
    outcome = {}

    def consume():
        try:
            list(engine.generate(plan))
        except Exception as error:
            outcome["error"] = error

    reader = threading.Thread(target=consume)
    reader.start()
    return reader, outcome


def test_the_probe_is_refused_at_validation_naming_the_field():
    with pytest.raises(InvalidRequest, match=r"sequence_penalty_min_length: must be an integer in \[2, 2147483647\]"):
        check_request(CompletionRequest(prompt=Prompt.from_text("Hi"), sequence_penalty_min_length=2**63))


def test_a_request_the_c_side_refuses_fails_at_once_and_the_engine_goes_on(engine, client):
    plan = plan_completion(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=3), engine.model)
    broken = replace(plan, samplers=tuple(replace(s, sequence_min_length=2**63) for s in plan.samplers))
    reader, outcome = generate_on_a_thread(engine, broken)
    reader.join(timeout=30)
    assert not reader.is_alive(), "the caller was left waiting"
    assert isinstance(outcome.get("error"), OverflowError)
    assert engine.stats()["sequence_ids_in_use"] == 0  # nothing held by the failed request
    answer = client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=3, minimum_tokens=3), MODEL)
    assert answer.num_tokens_generated == 3


def test_constraints_that_exclude_every_option_are_refused_at_validation():
    with pytest.raises(InvalidRequest, match="completion_bias_inclusion: every option starts with a string of "
                                             "completion_bias_exclusion"):
        check_request(CompletionRequest(prompt=Prompt.from_text("Hi"), completion_bias_inclusion=[" the harbour"],
                                        completion_bias_exclusion=[" the"]))


def test_constraints_that_leave_no_token_fail_their_request_only(engine, client):
    """Allowed only " the harbour", which the excluded " the" starts: no token is left at the
    second step. Validation refuses that pair, so the plan is made without it (the C side's
    EC_NO_TOKEN is the guard for what validation cannot foresee). The request sharing its decode
    batch completes as it does alone."""
    allowed = CompletionRequest(prompt=Prompt.from_text("The history of"), maximum_tokens=5,
                                completion_bias_inclusion=[" the harbour"])
    plan = plan_completion(allowed, engine.model)
    impossible = replace(plan, samplers=tuple(replace(s, completion_bias_exclusion=(b" the",)) for s in plan.samplers))
    fine = CompletionRequest(prompt=Prompt.from_text("The history of"), maximum_tokens=12, temperature=0.8, seed=3)
    alone = client.complete(fine, MODEL)
    reader, outcome = generate_on_a_thread(engine, impossible)
    answered = client.complete(fine, MODEL)
    reader.join(timeout=30)
    assert not reader.is_alive(), "the caller was left waiting"
    refused = outcome.get("error")
    assert isinstance(refused, InvalidRequest) and refused.field == "completion_bias_inclusion", refused
    assert "no token is left to generate" in str(refused)
    assert answered == alone
    assert engine.stats()["sequence_ids_in_use"] == 0


@pytest.mark.parametrize("threads", [0, -1, 513, 5113, 2.5])
def test_thread_counts_llama_cpp_cannot_use_are_refused_before_anything_loads(threads):
    """--threads 5113 once made llama.cpp start thousands of threads (load average 1,700)."""
    from edgecomplete import Client

    with pytest.raises(InvalidRequest, match=r"threads: must be an integer in \[1, 512\]"):
        Client(threads=threads)


@pytest.mark.parametrize("kv_cache", ["f32", "BF16", "", ["bf16"], 16])
def test_kv_cache_types_other_than_the_offered_ones_are_refused_before_anything_loads(kv_cache):
    from edgecomplete import Client

    with pytest.raises(InvalidRequest, match=r"kv_cache: must be one of bf16, f16, q8_0 \(or None: bf16 here\)"):
        Client(kv_cache=kv_cache)


@pytest.mark.parametrize("repack", ["yes", 1, 0.0])
def test_repack_other_than_a_bool_is_refused_before_anything_loads(repack):
    from edgecomplete import Client

    with pytest.raises(InvalidRequest, match=r"repack: must be True or False \(or None: (True|False) here\)"):
        Client(repack=repack)


@pytest.mark.parametrize("kv_cache", ["f16", "q8_0"])
def test_the_offered_kv_cache_types_load_and_complete(smollm2_path, kv_cache):
    from edgecomplete import Client, CompletionRequest, Prompt

    with Client(kv_cache=kv_cache) as client:
        response = client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=3), "smollm2-135m")
        assert client.backend.engine("smollm2-135m").model.kv_cache == kv_cache
    assert response.num_tokens_generated == 3
