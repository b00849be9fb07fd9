"""The SQLite store of sessions and presets, on a real database file in the test's folder."""

import sqlite3
import time

import pytest

from tui.session import Session, Turn
from tui.store import STORE_FILE, Store

RESPONSE = {"completions": [{"completion": " Paris", "completion_tokens": [" Paris"], "log_probs": [{" Paris": -0.1}],
                             "finish_reason": "end_of_text"}], "num_tokens_generated": 1}


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "data" / STORE_FILE)  # the folder is made on first use
    yield store
    store.close()


def chat(question="Capital of France?", **fields) -> Session:
    return Session("chat", "smollm2-135m", params={"temperature": 0.7, "stop_sequences": ["\n"]}, turns=[
        Turn("user", question),
        Turn("assistant", " Paris", request={"prompt": [{"type": "text", "data": "…"}], "seed": 3},
             response=RESPONSE, chosen=0, stopped=False),
        Turn("user", "And Spain? ñ"),
        Turn("assistant", " Mad", stopped=True),
    ], **fields)


def turns(session):
    return [(t.role, t.content, t.request, t.response, t.chosen, t.stopped) for t in session.turns]


def test_a_saved_session_loads_as_it_was(store):
    session = chat(system_prompt="Be brief.")
    session_id = store.save(session)
    assert session.id == session_id
    loaded = store.load(session_id)
    assert turns(loaded) == turns(session)
    assert (loaded.kind, loaded.model, loaded.system_prompt, loaded.params, loaded.id) == (
        "chat", "smollm2-135m", "Be brief.", session.params, session_id)
    assert loaded.title == "Capital of France?"  # the title shown is stored


def test_saving_again_updates_the_session_in_place(store):
    session = chat()
    session_id = store.save(session)
    del session.turns[2:]
    session.turns[1].chosen = 0
    session.buffer = "kept"
    assert store.save(session) == session_id
    loaded = store.load(session_id)
    assert turns(loaded) == turns(session) and loaded.buffer == "kept"
    assert len(store.sessions()) == 1


def test_a_session_survives_reopening_the_store(tmp_path):
    path = tmp_path / STORE_FILE
    first = Store(path)
    session_id = first.save(Session("playground", "m", buffer="Once upon a time"))
    first.close()
    again = Store(path)
    try:
        assert again.load(session_id).buffer == "Once upon a time"
    finally:
        again.close()


def test_sessions_are_listed_most_recent_first_by_kind(store):
    older = chat("older")
    store.save(older)
    time.sleep(0.01)
    play = Session("playground", "m", buffer="text")
    store.save(play)
    time.sleep(0.01)
    newer = chat("newer")
    store.save(newer)
    assert [row[0] for row in store.sessions()] == [newer.id, play.id, older.id]
    assert [row[1:3] for row in store.sessions("chat")] == [("chat", "newer"), ("chat", "older")]
    assert store.latest("chat").id == newer.id and store.latest("playground").id == play.id
    time.sleep(0.01)
    store.save(older)  # saved again: the most recent
    assert store.latest("chat").id == older.id


def test_an_empty_store_has_no_latest_session(store):
    assert store.latest("chat") is None and store.sessions() == [] and store.presets() == {}


def test_rename_and_delete(store, tmp_path):
    keep, gone = chat("keep"), chat("gone")
    store.save(keep)
    store.save(gone)
    store.rename(keep.id, "Renamed")
    assert store.load(keep.id).title == "Renamed"
    store.delete(gone.id)
    assert [row[0] for row in store.sessions()] == [keep.id]
    with pytest.raises(KeyError):
        store.load(gone.id)
    with sqlite3.connect(store.path) as db:  # its turns went with it
        assert db.execute("SELECT COUNT(*) FROM turns WHERE session_id = ?", (gone.id,)).fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM turns WHERE session_id = ?", (keep.id,)).fetchone() == (4,)


def test_search_finds_titles_prompts_buffers_and_messages_case_folded(store):
    by_message = chat("Tell me about PINEAPPLES")
    by_prompt = chat("x", system_prompt="You love rivers")
    by_buffer = Session("playground", "m", buffer="The river bank")
    literal = chat("50% off_sale")
    for session in (by_message, by_prompt, by_buffer, literal):
        store.save(session)
    assert [row[0] for row in store.search("pineapple")] == [by_message.id]
    assert {row[0] for row in store.search("RIVER")} == {by_prompt.id, by_buffer.id}
    assert [row[0] for row in store.search("river", kind="playground")] == [by_buffer.id]
    assert [row[0] for row in store.search("And Spain")] == [literal.id, by_prompt.id, by_message.id]
    # % and _ are searched for as themselves, not as LIKE wildcards.
    assert [row[0] for row in store.search("0% off_")] == [literal.id]
    assert [row[0] for row in store.search("_")] == [row[0] for row in store.search("%")] == [literal.id]


def test_presets_are_saved_replaced_listed_by_name_and_deleted(store):
    store.save_preset("warm", {"temperature": 0.9})
    store.save_preset("short", {"maximum_tokens": 5, "stop_sequences": ["\n"]})
    store.save_preset("warm", {"temperature": 1.1})
    assert store.presets() == {"short": {"maximum_tokens": 5, "stop_sequences": ["\n"]}, "warm": {"temperature": 1.1}}
    assert list(store.presets()) == ["short", "warm"]
    store.delete_preset("short")
    store.delete_preset("never saved")
    assert store.presets() == {"warm": {"temperature": 1.1}}


OLD_SCHEMA = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, title TEXT NOT NULL, model TEXT NOT NULL,
    system_prompt TEXT NOT NULL, params TEXT NOT NULL, buffer TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE turns (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, position INTEGER NOT NULL,
    role TEXT NOT NULL, content TEXT NOT NULL, request TEXT, response TEXT, chosen INTEGER NOT NULL,
    PRIMARY KEY (session_id, position));
CREATE TABLE presets (name TEXT PRIMARY KEY, params TEXT NOT NULL);
"""


def test_a_store_made_before_replies_were_marked_stopped_is_migrated(tmp_path):
    path = tmp_path / STORE_FILE
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO sessions VALUES (1, 'chat', 'Old one', 'smollm2-135m', '', '{}', '', 1.0)")
        db.execute("INSERT INTO turns VALUES (1, 0, 'user', 'Hi', NULL, NULL, 0)")
        db.execute("INSERT INTO turns VALUES (1, 1, 'assistant', 'Hello', NULL, ?, 0)", ('{"completions": []}',))
    db.close()
    store = Store(path)
    try:
        old = store.load(1)
        assert [(t.role, t.content, t.response, t.stopped) for t in old.turns] == [
            ("user", "Hi", None, False), ("assistant", "Hello", {"completions": []}, False)]
        old.turns[1].stopped = True
        store.save(old)
        assert store.load(1).turns[1].stopped
    finally:
        store.close()
    Store(path).close()  # opened again: already migrated, nothing to do
    with sqlite3.connect(path) as db:
        assert "stopped" in {row[1] for row in db.execute("PRAGMA table_info(turns)")}
    db.close()
