"""The official `openai` client against the OpenAI-compatible routes of a real `edgecomplete serve`:
the same answers as the in-process Client on this machine, in OpenAI's shapes, streamed or not,
and its errors as the client's exceptions."""

import openai
import pytest

from edgecomplete import ChatRequest, CompletionRequest, Message, Prompt, Role, TokenizationRequest

from ..conftest import MODEL
from .conftest import TOKEN

PROMPT = "The three primary colours are"


@pytest.fixture(scope="module")
def remote(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=TOKEN, max_retries=0)


def here(client, text=PROMPT, **fields):
    return client.complete(CompletionRequest(prompt=Prompt.from_text(text), **fields), MODEL)


def test_models(remote):
    assert [model.id for model in remote.models.list()] == [MODEL]


def test_greedy_completion_answers_as_the_in_process_client(remote, client):
    answer = remote.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    ours = here(client, maximum_tokens=12).completions[0]
    (choice,) = answer.choices
    assert answer.object == "text_completion" and answer.model == MODEL
    assert choice.text == ours.completion
    assert choice.finish_reason == ("length" if ours.finish_reason == "maximum_tokens" else "stop")
    assert answer.usage.completion_tokens == 12 or choice.finish_reason == "stop"
    ids = client.tokenize(TokenizationRequest(PROMPT, False, True), MODEL).token_ids
    tokens = remote.completions.create(model=MODEL, prompt=list(ids), max_tokens=12, temperature=0)
    assert tokens.choices[0].text == choice.text  # a prompt of token ids is the same prompt


def test_default_max_tokens_is_openais_16(remote):
    answer = remote.completions.create(model=MODEL, prompt="Count: 1, 2, 3,", temperature=0,
                                       extra_body={"minimum_tokens": 16})
    assert answer.usage.completion_tokens == 16 and answer.choices[0].finish_reason == "length"


def test_sampled_candidates_replay_their_seed(remote, client):
    answer = remote.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0.8, n=2, seed=7,
                                       presence_penalty=0.5, frequency_penalty=0.3, stop=["\n\n"])
    ours = here(client, maximum_tokens=10, temperature=0.8, n=2, seed=7, presence_penalty=0.5,
                frequency_penalty=0.3, stop_sequences=["\n\n"])
    assert [c.index for c in answer.choices] == [0, 1]
    assert [c.text for c in answer.choices] == [c.completion for c in ours.completions]
    assert answer.usage.prompt_tokens == ours.num_tokens_prompt_total // 2  # the prompt counted once


def test_legacy_logprobs_with_echo(remote, client):
    answer = remote.completions.create(model=MODEL, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=2,
                                       echo=True)
    ours = here(client, maximum_tokens=5, log_probs=2, echo=True, tokens=True).completions[0]
    (choice,) = answer.choices
    logprobs = choice.logprobs
    assert choice.text == ours.completion and choice.text.startswith(PROMPT)
    assert logprobs.tokens == list(ours.completion_tokens) and "".join(logprobs.tokens) == choice.text
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None  # the first prompt token
    assert logprobs.token_logprobs[1:] == [entry[token] for token, entry in
                                           zip(ours.completion_tokens[1:], ours.log_probs[1:])]
    assert logprobs.top_logprobs[1:] == list(ours.log_probs[1:])
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
    plain = remote.completions.create(model=MODEL, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=0)
    assert plain.choices[0].logprobs.text_offset[0] == len(PROMPT)  # offsets continue the prompt's text


def test_streaming_adds_up_to_the_answer(remote):
    fields = dict(model=MODEL, prompt=[PROMPT, "Once upon a time"], max_tokens=8, temperature=0.9, n=2, seed=3)
    whole = remote.completions.create(**fields)
    texts = {}
    chunks = list(remote.completions.create(**fields, stream=True, stream_options={"include_usage": True}))
    finished = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        texts[choice.index] = texts.get(choice.index, "") + choice.text
        if choice.finish_reason:
            finished[choice.index] = choice.finish_reason
    assert texts == {c.index: c.text for c in whole.choices} and len(texts) == 4  # 2 prompts x n=2
    assert finished == {c.index: c.finish_reason for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_aleph_fields_are_extensions(remote, client):
    answer = remote.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0.8, seed=1,
                                       extra_body={"top_k": 1, "completion_bias_exclusion": [" red"]})
    ours = here(client, maximum_tokens=6, temperature=0.8, seed=1, top_k=1, completion_bias_exclusion=[" red"])
    assert answer.choices[0].text == ours.completions[0].completion


def conversation():
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]


def test_chat_answers_as_the_in_process_client(remote, client):
    answer = remote.chat.completions.create(model=MODEL, messages=conversation(), max_tokens=12, temperature=0)
    ours = client.chat(ChatRequest(model=MODEL, messages=[Message(Role.System, "You are terse."),
                                                          Message(Role.User, "Name a colour.")],
                                   maximum_tokens=12, temperature=0), MODEL)
    (choice,) = answer.choices
    assert answer.object == "chat.completion"
    assert choice.message.role == "assistant" and choice.message.content == ours.message.content
    assert choice.finish_reason == ours.finish_reason.value
    streamed = list(remote.chat.completions.create(model=MODEL, messages=conversation(), max_tokens=12,
                                                   temperature=0, stream=True,
                                                   stream_options={"include_usage": True}))
    assert streamed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in streamed[:-1]) == ours.message.content
    assert streamed[-2].choices[0].finish_reason == choice.finish_reason
    assert streamed[-1].usage.model_dump() == answer.usage.model_dump()


def test_chat_logprobs(remote):
    answer = remote.chat.completions.create(model=MODEL, messages=conversation(), max_tokens=6, temperature=0,
                                            logprobs=True, top_logprobs=2)
    choice = answer.choices[0]
    content = choice.logprobs.content
    assert "".join(entry.token for entry in content) == choice.message.content
    for entry in content:
        best = max(alternative.logprob for alternative in entry.top_logprobs)
        assert entry.logprob == best  # greedy: the chosen token is the most likely one
        assert bytes(entry.bytes).decode() == entry.token


def test_errors_arrive_as_the_clients_exceptions(server, remote):
    with pytest.raises(openai.BadRequestError) as error:
        remote.completions.create(model=MODEL, prompt=PROMPT, max_tokens=-1)
    assert error.value.body["param"] == "max_tokens" and "max_tokens: must be an integer in [0, " in error.value.message
    with pytest.raises(openai.BadRequestError, match="wat: is not a field"):
        remote.completions.create(model=MODEL, prompt=PROMPT, extra_body={"wat": 1})
    with pytest.raises(openai.BadRequestError, match="messages\\[0\\].role: must be one of"):
        remote.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="tools: "):
        remote.chat.completions.create(model=MODEL, messages=conversation(),
                                       tools=[{"type": "function", "function": {"name": "f"}}])
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        remote.completions.create(model="gpt-4", prompt=PROMPT)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).models.list()


def test_steering_concepts_are_an_extension_of_chat(remote, client):
    from edgecomplete import SteeringConceptCreationRequest, SteeringPairedExample

    concept = client.create_steering_concept(SteeringConceptCreationRequest([
        SteeringPairedExample("The trip was awful.", "The trip was wonderful."),
        SteeringPairedExample("I hate rainy days.", "I love rainy days.")])).id  # the server shares the data folder
    messages = [Message(Role.System, "You are terse."), Message(Role.User, "Name a colour.")]
    steered = remote.chat.completions.create(model=MODEL, messages=conversation(), max_tokens=12, temperature=0,
                                             extra_body={"steering_concepts": [concept]})
    ours = client.chat(ChatRequest(model=MODEL, messages=messages, maximum_tokens=12, temperature=0,
                                   steering_concepts=[concept]), MODEL)
    assert steered.choices[0].message.content == ours.message.content
    stronger = remote.chat.completions.create(model=MODEL, messages=conversation(), max_tokens=12, temperature=0,
                                              extra_body={"steering_concepts": [concept],
                                                          "steering_strengths": {concept: 3.0}})
    plain = client.chat(ChatRequest(model=MODEL, messages=messages, maximum_tokens=12, temperature=0), MODEL)
    assert stronger.choices[0].message.content != plain.message.content  # it does steer
