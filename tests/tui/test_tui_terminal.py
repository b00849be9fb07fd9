"""The terminal UI in a real terminal: tmux runs `python -m tui` on the real model, `send-keys`
types as a terminal delivers keys (a whole burst at once), and the SQLite store says what was sent.

Pilot hands the app one key at a time and lets it settle in between; a terminal does not, which
is how a send key acted on ahead of the characters typed before it went unseen."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (make test installs it)")

QUESTION = "What is the capital of France?"


class Terminal:
    def __init__(self, socket: str):
        self.socket = socket

    def tmux(self, *args: str) -> str:
        # The server's environment is the app's: without COLUMNS and LINES (pytest's own terminal
        # size), which would override the window's.
        environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run([TMUX, "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              env=environment).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "ui")

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "ui", *keys)

    def wait(self, condition, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")
            time.sleep(0.1)


@pytest.fixture
def terminal(tmp_path, smollm2_path):
    config = tmp_path / "tui.toml"
    config.write_text("[defaults]\nmaximum_tokens = 3\n")
    data = tmp_path / "data"
    # A socket per test: kill-server returns before the old server is gone, and a busy machine
    # then refused the next test's session on the same socket ("duplicate session").
    term = Terminal(f"edgecomplete-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    env = {"EDGECOMPLETE_DATA": str(data), "EDGECOMPLETE_CONFIG": str(config), "TERM": "xterm-256color"}
    options = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    term.tmux("-f", "/dev/null", "new-session", "-d", "-s", "ui", "-x", "120", "-y", "36", *options,
              f"{sys.executable} -m tui")
    term.db = data / "tui.sqlite3"
    try:
        # Loaded: the stats bar shows the context window's size.
        term.wait(lambda: re.search(r"\d+/[1-9]\d*", term.screen()), "the model to load")
        yield term
    finally:
        subprocess.run([TMUX, "-L", term.socket, "kill-server"], capture_output=True)


def rows(term, sql):
    if not term.db.exists():
        return []
    with sqlite3.connect(term.db) as db:
        return db.execute(sql).fetchall()


def test_a_burst_of_keys_ending_in_enter_is_sent_whole_in_a_real_terminal(terminal):
    for attempt in range(1, 4):
        terminal.send(QUESTION, "Enter")  # one send-keys: the way a paste or a fast typist arrives
        terminal.wait(lambda: len(rows(terminal, "SELECT 1 FROM turns WHERE role = 'assistant' AND response IS NOT NULL"))
                      == attempt, "the reply")
        sent = [content for (content,) in rows(terminal, "SELECT content FROM turns WHERE role = 'user'")]
        assert sent == [QUESTION] * attempt
        terminal.send("C-n")  # a new conversation for the next try
        terminal.wait(lambda: QUESTION not in terminal.screen(), "the new conversation")


def test_a_burst_ending_in_the_generate_key_completes_all_of_it_in_a_real_terminal(terminal):
    terminal.send("F3")
    terminal.wait(lambda: "F5: generate · F6: accept" in terminal.screen(), "the playground")
    terminal.send("Once upon a time", "F5")

    def accepted():
        terminal.send("F6")  # accept (nothing until the completion has ended): it is saved with its request
        time.sleep(0.3)
        return rows(terminal, "SELECT request FROM turns JOIN sessions ON sessions.id = session_id "
                              "WHERE kind = 'playground'")

    saved = terminal.wait(accepted, "the accepted completion")
    assert json.loads(saved[0][0])["prompt"][0]["data"] == "Once upon a time"
