"""Prefix reuse: a prompt that starts like an earlier one (the next chat turn) evaluates only the
new tokens, and computes what a cold engine computes."""

from edgecomplete import Client, CompletionRequest, Prompt
from edgecomplete.engine import TokenSampled
from edgecomplete.plan import plan_completion

from ..conftest import MODEL, needs_batched_rows_exact

SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def turn(history, question):
    return history + f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def chat_request(prompt, **fields):
    return CompletionRequest(prompt=Prompt.from_text(prompt), maximum_tokens=40, raw_completion=True,
                             disable_optimizations=True, **fields)


def ask(client, prompt, **fields):
    return client.complete(chat_request(prompt, **fields), model=MODEL).completions[0]


def reply(engine, prompt, **fields):
    """The prompt's tokens, and the reply's tokens, text and raw text, from the engine's events."""
    plan = plan_completion(chat_request(prompt, **fields), engine.model)
    tokens, text, raw = [], b"", b""
    for event in engine.generate(plan):
        if isinstance(event, TokenSampled):
            tokens.append(event.token)
            text, raw = text + event.text, raw + event.raw
    return plan.prompt_tokens, tokens, text.decode(), raw.decode()


def common_prefix(a, b):
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return length


def test_follow_up_turns_evaluate_only_the_new_tokens_and_match_a_cold_engine(smollm2_path):
    with Client() as warm, Client() as cold:
        engine = warm.backend.engine(MODEL)
        history, cached, previous_prompt = SYSTEM, (), ()
        for question in ("What is 2+2?", "And 3+3?", "Name a colour.", "Thanks!"):
            prompt = turn(history, question)
            before = engine.stats()
            prompt_tokens, tokens, completion, raw = reply(engine, prompt, temperature=0.8, seed=5)
            after = engine.stats()
            evaluated = after["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]
            reused = after["prompt_tokens_reused"] - before["prompt_tokens_reused"]
            assert evaluated + reused == len(prompt_tokens)
            # The last turn's cells are reused as far as this prompt's tokens agree with them (a
            # sampled reply may be spelled in other tokens than its text's), but for the last
            # prompt token, whose logits are needed. The reply's first character may merge with
            # the newline before it: at least the previous prompt but its last token is reused.
            assert reused == min(common_prefix(cached, prompt_tokens), len(prompt_tokens) - 1)
            assert reused >= len(previous_prompt) - 1
            assert completion == ask(cold, prompt, temperature=0.8, seed=5).completion
            # Kept for the next turn: the prompt and the reply but its last token (never evaluated).
            cached, previous_prompt = tuple(prompt_tokens) + tuple(tokens[:-1]), prompt_tokens
            history = prompt + raw + "\n"


LONG_TURN = ("Tell me about the harbour: the quay, the boats that tie up there, the market that sells "
             "salt fish and rope, the council above the customs house, and the ferry to the islands. ") * 4


def test_long_turns_past_512_cells_reuse_their_prefix_exactly(smollm2_path):
    """Turns of about 100 tokens each, so that the history passes 512 cells and every new turn is
    evaluated as a batch of 64 rows or more on top of the reused ones: the log-probs (not only
    the text) are those of a cold engine that evaluates the whole prompt at once."""
    with Client() as warm, Client() as cold:
        engine = warm.backend.engine(MODEL)
        needs_batched_rows_exact(engine)  # a new turn's rows in one batch vs the whole prompt's
        history = SYSTEM
        for turn_number in range(6):
            prompt = turn(history, f"{turn_number}. {LONG_TURN}")
            fields = dict(temperature=0.8, seed=turn_number, log_probs=2)
            before = engine.stats()["prompt_tokens_reused"]
            here = ask(warm, prompt, **fields)
            if turn_number:
                assert engine.stats()["prompt_tokens_reused"] > before
            assert here == ask(cold, prompt, **fields)
            history = prompt + here.raw_completion + "\n"
        assert len(engine.model.tokenize(history)) > 600


def test_a_small_context_compacts_and_stays_exact(smollm2_path):
    prompts = [f"Item {i}: the {word} is" for i, word in enumerate(["sky", "sea", "tree", "road", "cat", "moon"])]
    with Client(context_length=256) as small, Client() as big:
        for round_ in range(3):
            for i, text in enumerate(prompts):
                request = CompletionRequest(prompt=Prompt.from_text(text), maximum_tokens=30, temperature=1.0,
                                            seed=i + round_)
                assert (small.complete(request, model=MODEL).completions[0].completion
                        == big.complete(request, model=MODEL).completions[0].completion)
        stats = small.backend.engine(MODEL).stats()
        assert stats["retired_cells"] == 0 and stats["sequences_with_cells"] == 0
        assert stats["cached_prefix_tokens"] <= 256


def test_cancelled_requests_leave_nothing_behind(smollm2_path):
    with Client() as client:
        long_prompt = "word " * 300
        stream = client.complete_with_streaming(CompletionRequest(prompt=Prompt.from_text(long_prompt),
                                                                  maximum_tokens=50), model=MODEL)
        next(iter(stream))
        stream.close()
        fresh = CompletionRequest(prompt=Prompt.from_text("word " * 10 + "and then"), maximum_tokens=10,
                                  temperature=1.0, seed=3)
        with Client() as cold:
            assert (client.complete(fresh, model=MODEL).completions[0].completion
                    == cold.complete(fresh, model=MODEL).completions[0].completion)


def test_prefix_cache_can_be_turned_off(smollm2_path):
    with Client(prefix_cache=False) as client:
        request = CompletionRequest(prompt=Prompt.from_text("The same prompt twice"), maximum_tokens=5)
        client.complete(request, model=MODEL)
        client.complete(request, model=MODEL)
        stats = client.backend.engine(MODEL).stats()
        assert stats["prompt_tokens_reused"] == 0 and stats["cached_prefix_tokens"] == 0


def test_a_request_that_needs_room_keeps_the_prefix_it_reuses(smollm2_path):
    # Two conversations fill both prefix slots; continuing the first without maximum_tokens needs
    # most of a small context: the other slot goes, the reused one stays.
    with Client(context_length=512) as client:
        engine = client.backend.engine(MODEL)
        first = turn(SYSTEM, "What is 2+2?")
        ask(client, first)
        ask(client, turn(SYSTEM.replace("helpful", "friendly"), "Name a colour."))
        before = engine.stats()["prompt_tokens_reused"]
        follow_up = CompletionRequest(prompt=Prompt.from_text(first + "4<|im_end|>\n"), maximum_tokens=None,
                                      disable_optimizations=True)
        client.complete(follow_up, model=MODEL)
        assert engine.stats()["prompt_tokens_reused"] - before >= len(engine.model.tokenize(first)) - 1
