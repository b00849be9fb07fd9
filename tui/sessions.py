"""The open sessions, one per mode, and the store that keeps them: what the app does with
sessions, apart from the screen that shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from . import exports
from .session import Session
from .store import Store

KINDS = ("chat", "playground")


class OpenSessions:
    """The session open in each mode: the latest one kept, else a new one with `defaults[kind]`
    as its parameters."""

    def __init__(self, store: Store, model: str, defaults: Mapping[str, Mapping[str, Any]]):
        self.store = store
        self._open: Dict[str, Session] = {
            kind: store.latest(kind) or Session(kind, model, params=dict(defaults[kind])) for kind in KINDS}

    def __getitem__(self, kind: str) -> Session:
        return self._open[kind]

    def put(self, session: Session) -> None:
        """Make `session` its mode's open session."""
        self._open[session.kind] = session

    def save(self, session: Session, model: str, params: Optional[Dict[str, Any]] = None) -> None:
        """Keep `session` as it is now, with the `model` it was used with (and the panel's
        `params`, for the session the panel shows)."""
        session.model = model
        if params is not None:
            session.params = params
        self.store.save(session)

    def follow(self, session_id: int, title: Optional[str], model: str) -> List[Session]:
        """A session renamed (`title`) or deleted (None) in the session list: an open one follows.
        Returns the new sessions that took the place of deleted open ones."""
        replaced = []
        for session in list(self._open.values()):
            if session.id != session_id:
                continue
            if title is not None:
                session.title = title
                continue
            replaced.append(Session(session.kind, model, params=dict(session.params)))
            self.put(replaced[-1])
        return replaced

    def import_file(self, path: Path) -> Session:
        """The session exported to `path`, saved (ImportFailed, naming the file, if there is none)."""
        session = exports.import_session(path)
        self.store.save(session)
        return session

    def close(self) -> None:
        """Keep the open sessions that have anything in them, and close the store."""
        for session in self._open.values():
            if session.turns or session.buffer:
                self.store.save(session)
        self.store.close()
