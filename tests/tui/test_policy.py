"""Generation policy without a screen: the request the panel's values make, the service the views
are handed, and a Generation's numbers (streamed, or whole for best_of) on the real model."""

import asyncio

import pytest

from edgecomplete import AsyncClient, CompletionRequest, Prompt
from tui.generation import Generation
from tui.policy import build_request
from tui.service import GenerationService
from tui.stats import GenerationStats

from ..conftest import MODEL


def test_every_request_brings_its_tokens_and_a_chat_prompt_is_sent_as_rendered():
    chat = build_request({"maximum_tokens": 5, "temperature": 0.0}, chat=True)
    assert chat.tokens and chat.disable_optimizations
    assert chat.prompt == Prompt.from_text("")  # the view fills it in
    playground = build_request({"maximum_tokens": 5, "temperature": 0.0}, chat=False)
    assert playground.tokens and not playground.disable_optimizations


@pytest.mark.parametrize("values, log_probs", [
    ({"n": 1}, None),
    ({"n": 2}, 0),  # several candidates: log-probs for their scores
    ({"n": 1, "best_of": 3}, 0),
    ({"n": 2, "log_probs": 5}, 5),  # asked for: kept
])
def test_several_candidates_bring_log_probs(values, log_probs):
    assert build_request(values, chat=True).log_probs == log_probs


def test_a_sampled_request_gets_a_seed_to_replay_and_a_greedy_one_none():
    assert build_request({"temperature": 0.0}, chat=False).seed is None
    sampled = build_request({"temperature": 0.7}, chat=False)
    assert isinstance(sampled.seed, int)
    assert build_request({"temperature": 0.7, "seed": 42}, chat=False).seed == 42


class Values:
    """A parameter source as the panel is one: values, or None where they cannot be sent."""

    def __init__(self, values):
        self.values = values

    def request_values(self):
        return self.values


def test_the_service_builds_requests_from_its_parameter_source():
    stats = GenerationStats()
    service = GenerationService(client=None, model=MODEL, params=Values({"maximum_tokens": 3}), stats=stats)
    assert service.request(chat=True).maximum_tokens == 3
    service.params = Values(None)  # an invalid field: nothing is sent
    assert service.request(chat=True) is None
    service.use("other", {"chat": False, "context_length": 2048})
    assert (service.model, service.can_chat, stats.context_length) == ("other", False, 2048)
    assert service.generation(build_request({}, chat=False)).model == "other"
    assert "other has no chat template" in service.no_chat_message()


def run(client, **fields):
    """A Generation of `fields` on the real model: it, its numbers, and the text handed to the view."""
    request = CompletionRequest(prompt=Prompt.from_text("The sea is"), temperature=0.0, **fields)
    generation, stats, shown = Generation(request, MODEL), GenerationStats(), {}

    def on_text(index, text):
        shown[index] = shown.get(index, "") + text

    async def main():
        await generation.run(AsyncClient(client=client), stats, on_text)
    asyncio.run(main())
    return generation, stats, shown


def test_a_streamed_generation_hands_on_every_candidates_text(client):
    generation, stats, shown = run(client, maximum_tokens=6, minimum_tokens=6, n=2, tokens=True)
    texts = [c.completion for c in generation.response.completions]
    assert shown == {0: texts[0], 1: texts[1]} == generation.texts
    assert stats.streamed and stats.time_to_first_token is not None
    assert stats.generated == 12 and not stats.running
    assert stats.prompt_tokens == generation.response.num_tokens_prompt_total // 2  # one candidate's prompt


def test_best_of_comes_back_whole_without_a_time_to_first_token(client):
    generation, stats, shown = run(client, maximum_tokens=4, minimum_tokens=4, best_of=2, tokens=True)
    assert not stats.streamed and stats.time_to_first_token is None
    assert shown == {0: generation.response.completions[0].completion}
    assert stats.tokens_per_second is not None and generation.error is None


def test_a_refused_request_is_an_error_not_a_crash(client):
    generation, stats, shown = run(client, maximum_tokens=100000)
    assert generation.response is None and "maximum_tokens" in generation.error
    assert shown == {} and not stats.running
