"""What the views tell the app: messages go up, attributes go down.

A view changes its own widgets and its session object; whatever reaches beyond it (the store, the
notifications, the cursors of every other widget) it posts here as what happened, and the app
handles it with `@on`. A view never calls the app. Widget-level messages that only a parent
cares about stay nested in their widget (ChatInput.Submitted, ParamsPanel.Changed,
TokenView.Moved)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from textual.message import Message

from .session import Session


@dataclass
class SessionChanged(Message):
    """A session was changed in a way worth keeping (a message sent, a reply ended or refused, a
    candidate chosen, a completion accepted): the app saves it."""

    session: Session


@dataclass
class SessionRenamed(Message):
    """A saved session was renamed in the session list."""

    session_id: int
    title: str


@dataclass
class SessionDeleted(Message):
    """A saved session was deleted in the session list."""

    session_id: int


@dataclass
class GenerationStarted(Message):
    """A view started a generation (its worker is streaming)."""


@dataclass
class GenerationFinished(Message):
    """A generation ended: whole, stopped, or refused by the engine (RequestRejected says why)."""


@dataclass
class RequestRejected(Message):
    """The engine refused a request (or the model cannot chat); the conversation is as it was.
    `reason` is the API's message, which names the field."""

    reason: str


@dataclass
class ParamsInvalid(Message):
    """A request was asked for while a parameter is invalid: nothing was sent. `reason` is the
    first field's message (each field shows its own in the panel)."""

    reason: str


@dataclass
class ChatUnavailable(Message):
    """A message was sent to a model without a chat template: nothing was sent."""


@dataclass
class PresetSaved(Message):
    """The user saved the panel's values as a named preset."""

    name: str
    params: Dict[str, Any]


@dataclass
class PresetDeleted(Message):
    """The user deleted a named preset."""

    name: str


@dataclass
class ModelLoaded(Message):
    """The model loader's worker has loaded `model` (its `info`: context length, sequence limit,
    chat template); the app makes it the current one."""

    model: str
    info: Dict[str, Any]


@dataclass
class ModelMissing(Message):
    """The model asked for is not installed; `reason` says so and how to get it."""

    reason: str
