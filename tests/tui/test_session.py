"""Sessions as data: their JSON export read back exactly, mistakes in a file named, and the turn
arithmetic the views rely on (chosen candidate, branch points, replies continued)."""

import json

import pytest

from tui.session import EXPORT_FORMAT, Session, Turn, mean_log_prob, with_prefix

RESPONSE = {
    "model_version": "smollm2-135m",
    "num_tokens_prompt_total": 12,
    "num_tokens_generated": 6,
    "completions": [
        {"completion": " blue sky", "completion_tokens": [" blue", " sky"], "finish_reason": "end_of_text",
         "log_probs": [{" blue": -0.5, " grey": -1.5}, {" sky": -0.25}]},
        {"completion": " grey", "completion_tokens": [" grey"], "finish_reason": "maximum_tokens",
         "log_probs": [{" grey": -1.0}]},
    ],
}


def chat() -> Session:
    return Session(
        kind="chat", model="smollm2-135m", title="", system_prompt="Answer briefly.\nPlease.",
        params={"temperature": 0.7, "stop_sequences": ["\n\n"], "logit_bias": None, "n": 2},
        turns=[Turn("user", "Colour of the sky? ☁️ «ok»"),
               Turn("assistant", " grey", request={"prompt": [{"type": "text", "data": "…"}], "seed": 7},
                    response=RESPONSE, chosen=1),
               Turn("user", "Again"),
               Turn("assistant", "It is", stopped=True)])


def through_a_file(session: Session) -> Session:
    return Session.from_json(json.loads(json.dumps(session.to_json(), ensure_ascii=False)))


def as_tuple(session: Session):
    return (session.kind, session.model, session.system_prompt, session.params, session.buffer,
            [(t.role, t.content, t.request, t.response, t.chosen, t.stopped) for t in session.turns])


def test_a_chat_round_trips_through_its_json_export():
    session = chat()
    again = through_a_file(session)
    assert as_tuple(again) == as_tuple(session)
    assert again.title == session.display_title() == "Colour of the sky? ☁️ «ok»"  # the title shown is kept
    assert again.id is None  # a file is a new session until the store keeps it
    assert again.turns[1].content == again.turns[1].completions()[1]["completion"]


def test_a_playground_round_trips_with_its_buffer_and_accepted_completions():
    session = Session("playground", "/models/my model.gguf", title="Harbour", buffer="Once\tupon\n a time",
                      turns=[Turn("assistant", " there", response=RESPONSE)])
    again = through_a_file(session)
    assert as_tuple(again) == as_tuple(session)
    assert again.title == "Harbour"


def test_an_empty_session_round_trips():
    again = through_a_file(Session("chat", "smollm2-135m"))
    assert as_tuple(again) == ("chat", "smollm2-135m", "", {}, "", [])
    assert again.title == "New chat"


def test_fields_left_out_of_a_file_take_their_defaults():
    session = Session.from_json({"format": EXPORT_FORMAT, "kind": "chat", "model": "m",
                                 "turns": [{"role": "user", "content": "hi"}]})
    assert (session.title, session.system_prompt, session.params, session.buffer) == ("", "", {}, "")
    assert [(t.request, t.response, t.chosen, t.stopped) for t in session.turns] == [(None, None, 0, False)]


@pytest.mark.parametrize("data, message", [
    ([1, 2, 3], "not an edgecomplete session export (format 'list'"),
    ({"kind": "chat", "model": "m"}, "format None, expected 'edgecomplete-session/1'"),
    ({"format": "edgecomplete-session/2", "kind": "chat", "model": "m"}, "format 'edgecomplete-session/2'"),
    ({"format": EXPORT_FORMAT, "kind": "notes", "model": "m"}, "'kind' must be 'chat' or 'playground', got 'notes'"),
    ({"format": EXPORT_FORMAT, "kind": "chat"}, "'model' must be str, got NoneType"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m", "params": []}, "'params' must be dict, got list"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m", "turns": {}}, "'turns' must be list, got dict"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m", "turns": ["hi"]}, "turns[0] must be an object"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m", "turns": [{"role": "robot", "content": "x"}]},
     "turns[0]: 'role' must be 'user' or 'assistant', got 'robot'"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m", "turns": [{"role": "user", "content": 3}]},
     "turns[0]: 'content' must be str, got int"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m",
      "turns": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "chosen": True}]},
     "turns[1]: 'chosen' must be int, got bool"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m",
      "turns": [{"role": "assistant", "content": "y", "response": "text"}]},
     "turns[0]: 'response' must be dict or null, got str"),
    ({"format": EXPORT_FORMAT, "kind": "chat", "model": "m",
      "turns": [{"role": "assistant", "content": "y", "stopped": 1}]},
     "turns[0]: 'stopped' must be bool, got int"),
])
def test_a_file_that_is_not_a_session_export_is_refused_naming_what_is_wrong(data, message):
    with pytest.raises(ValueError) as error:
        Session.from_json(data)
    assert message in str(error.value)


def test_the_title_shown_is_the_first_message_shortened():
    session = Session("chat", "m", turns=[Turn("user", "  a   long\nquestion " + "word " * 20)])
    title = session.display_title()
    assert title.startswith("a long question word") and title.endswith("…") and len(title) == 41
    assert Session("playground", "m", buffer="The harbour").display_title() == "The harbour"
    assert Session("playground", "m").display_title() == "New playground"


def test_a_turn_shows_its_chosen_candidate_and_why_it_ended():
    turn = Turn("assistant", " grey", response=RESPONSE, chosen=1)
    assert turn.tokens() == [" grey"] and turn.log_probs() == [{" grey": -1.0}]
    assert turn.ending == "cut at maximum_tokens"
    turn.chosen = 0
    assert turn.ending is None
    assert Turn("assistant", "It is", stopped=True).ending == "stopped"
    assert Turn("user", "hi").tokens() is None and Turn("user", "hi").completions() == []


def test_a_branch_keeps_the_tokens_before_it_and_the_alternative_with_its_distribution():
    turn = Turn("assistant", " blue sky", response=RESPONSE)
    tokens, log_probs = turn.kept_until(1, " cloud")
    assert tokens == [" blue", " cloud"]
    assert log_probs == [{" blue": -0.5, " grey": -1.5}, {" sky": -0.25}]
    tokens, log_probs = turn.kept_until(5, " cloud")  # past the log-probs: none kept
    assert tokens == [" blue", " sky", " cloud"] and log_probs is None


def test_a_continued_reply_is_the_whole_reply():
    whole = with_prefix(RESPONSE, "Surely", ["Sure", "ly"], [{"Sure": -0.1}, {"ly": -0.2}])
    first = whole["completions"][0]
    assert first["completion"] == "Surely blue sky"
    assert first["completion_tokens"] == ["Sure", "ly", " blue", " sky"]
    assert first["log_probs"][:2] == [{"Sure": -0.1}, {"ly": -0.2}] and len(first["log_probs"]) == 4
    assert whole["num_tokens_generated"] == RESPONSE["num_tokens_generated"]
    assert RESPONSE["completions"][0]["completion"] == " blue sky"  # the response itself is left as it was


def test_mean_log_prob_skips_tokens_without_log_probs():
    assert mean_log_prob([{" a": -1.0}, {}, {" c": -3.0}], [" a", " b", " c"]) == -2.0
    assert mean_log_prob(None, [" a"]) is None and mean_log_prob([{" a": -1.0}], None) is None
    assert mean_log_prob([{" x": -1.0}], [" a"]) is None


def test_the_markdown_export_reads_as_the_conversation():
    text = chat().to_markdown()
    assert text.startswith("# Colour of the sky? ☁️ «ok»\n\nModel: `smollm2-135m`")
    assert "## System\n\nAnswer briefly.\nPlease." in text
    assert "## Assistant\n\n grey\n\n_(cut at maximum_tokens)_\n\n_mean log-prob -1.000" in text
    assert text.rstrip().endswith("It is\n\n_(stopped)_")
