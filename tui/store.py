"""SQLite persistence of sessions and parameter presets, in the user's data folder."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .session import Session, Turn

STORE_FILE = "tui.sqlite3"  # in the data folder (tui.config.data_dir()): the UI's and `edgecomplete chat`'s

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    model TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    params TEXT NOT NULL,
    buffer TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    request TEXT,
    response TEXT,
    chosen INTEGER NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0,
    images TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (session_id, position)
);
CREATE TABLE IF NOT EXISTS presets (
    name TEXT PRIMARY KEY,
    params TEXT NOT NULL
);
"""


def _dump(value: Optional[Any]) -> Optional[str]:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _load(text: Optional[str]) -> Optional[Any]:
    return None if text is None else json.loads(text)


BUSY_SECONDS = 10.0  # how long a writer waits for another


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Two UIs (or a UI and `edgecomplete chat`) may share the store: a writer waits for the
        # other (busy_timeout), and with the write-ahead log a process killed mid-write leaves the
        # last committed state whole.
        self._db = sqlite3.connect(str(path), timeout=BUSY_SECONDS)
        self._set_write_ahead_log()
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(turns)")}
        if "stopped" not in columns:  # stores made before replies were marked as stopped
            with self._db:
                self._db.execute("ALTER TABLE turns ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0")
        if "images" not in columns:  # stores made before messages took images
            with self._db:
                self._db.execute("ALTER TABLE turns ADD COLUMN images TEXT NOT NULL DEFAULT '[]'")

    def _set_write_ahead_log(self) -> None:
        """SQLite does not wait (busy_timeout) for the lock that changing the journal mode needs,
        as waiting there could deadlock: two stores opened at once retry for as long."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def close(self) -> None:
        self._db.close()

    # ---- sessions --------------------------------------------------------------------------

    def save(self, session: Session) -> int:
        with self._db:
            values = (session.kind, session.display_title(), session.model, session.system_prompt,
                      json.dumps(session.params), session.buffer, time.time())
            if session.id is None:
                cursor = self._db.execute(
                    "INSERT INTO sessions (kind, title, model, system_prompt, params, buffer, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", values)
                session.id = cursor.lastrowid
            else:
                self._db.execute(
                    "UPDATE sessions SET kind=?, title=?, model=?, system_prompt=?, params=?, buffer=?, updated=? "
                    "WHERE id=?", values + (session.id,))
            self._db.execute("DELETE FROM turns WHERE session_id=?", (session.id,))
            self._db.executemany(
                "INSERT INTO turns (session_id, position, role, content, request, response, chosen, stopped, images) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(session.id, i, t.role, t.content, _dump(t.request), _dump(t.response), t.chosen, t.stopped,
                  json.dumps(t.images)) for i, t in enumerate(session.turns)])
        return session.id

    def load(self, session_id: int) -> Session:
        row = self._db.execute(
            "SELECT kind, title, model, system_prompt, params, buffer FROM sessions WHERE id=?", (session_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no session {session_id}")
        kind, title, model, system_prompt, params, buffer = row
        turns = [Turn(role, content, _load(request), _load(response), chosen, bool(stopped), json.loads(images))
                 for role, content, request, response, chosen, stopped, images in self._db.execute(
                     "SELECT role, content, request, response, chosen, stopped, images FROM turns "
                     "WHERE session_id=? ORDER BY position", (session_id,))]
        return Session(kind=kind, model=model, title=title, system_prompt=system_prompt,
                       params=json.loads(params), turns=turns, buffer=buffer, id=session_id)

    def sessions(self, kind: Optional[str] = None) -> List[Tuple[int, str, str, str, float]]:
        """(id, kind, title, model, updated), most recent first."""
        query = "SELECT id, kind, title, model, updated FROM sessions"
        args: tuple = ()
        if kind:
            query += " WHERE kind=?"
            args = (kind,)
        return list(self._db.execute(query + " ORDER BY updated DESC, id DESC", args))

    def latest(self, kind: str) -> Optional[Session]:
        rows = self.sessions(kind)
        return self.load(rows[0][0]) if rows else None

    def rename(self, session_id: int, title: str) -> None:
        with self._db:
            self._db.execute("UPDATE sessions SET title=? WHERE id=?", (title, session_id))

    def delete(self, session_id: int) -> None:
        with self._db:  # its turns go with it (ON DELETE CASCADE)
            self._db.execute("DELETE FROM sessions WHERE id=?", (session_id,))

    def search(self, text: str, kind: Optional[str] = None) -> List[Tuple[int, str, str, str, float]]:
        """Sessions whose title, system prompt, buffer or any message contains `text` (case
        folded), as `sessions()` lists them."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = ("SELECT id, kind, title, model, updated FROM sessions s WHERE "
                 "(title LIKE ?1 ESCAPE '\\' OR system_prompt LIKE ?1 ESCAPE '\\' OR buffer LIKE ?1 ESCAPE '\\' "
                 "OR EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id AND t.content LIKE ?1 ESCAPE '\\'))")
        args: tuple = (pattern,)
        if kind:
            query += " AND kind=?2"
            args = (pattern, kind)
        return list(self._db.execute(query + " ORDER BY updated DESC, id DESC", args))

    # ---- presets -----------------------------------------------------------------------------

    def save_preset(self, name: str, params: Dict[str, Any]) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO presets (name, params) VALUES (?, ?)",
                             (name, json.dumps(params)))

    def delete_preset(self, name: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM presets WHERE name=?", (name,))

    def presets(self) -> Dict[str, Dict[str, Any]]:
        return {name: json.loads(params) for name, params in self._db.execute(
            "SELECT name, params FROM presets ORDER BY name")}
