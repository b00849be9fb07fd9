"""A session's files: exported as Markdown (to read) and JSON (the exact requests and responses,
to replay or import), and imported back from that JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .session import Session


class ImportFailed(Exception):
    """A file that is missing or not a session export; the message names the file and why."""


def export_session(session: Session, folder: Path) -> Path:
    """Write the session into `folder` as Markdown and as JSON; the files' path without suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{session.kind}-{session.id or 'new'}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".md").write_text(session.to_markdown(), encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(session.to_json(), ensure_ascii=False, indent=2),
                                         encoding="utf-8")
    return stem


def import_session(path: Path) -> Session:
    """The session a JSON export holds (not yet saved); ImportFailed if there is none."""
    try:
        return Session.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ImportFailed(f"{path}: {reason}") from error
