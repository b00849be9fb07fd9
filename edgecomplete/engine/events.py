"""The engine's events: what the decode loop reports of one request, in order, and all that
stream.py needs to build the API's stream items (no vocabulary, no model).

Per candidate: an optional PromptEcho, then TokenSampled per generated token, then
SequenceFinished. With best_of, CandidatesDropped follows; Decoded closes the request's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union


@dataclass(frozen=True)
class TokenEntry:
    """One token of a completion as the API reports it: its text (specials rendered; shortened
    when a stop sequence starts inside it), raw log-prob and most likely alternatives as
    (token, raw text, log-prob)."""

    text: bytes
    logprob: Optional[float]  # None for the first prompt token (nothing predicts it)
    top: Tuple[Tuple[int, bytes, float], ...] = ()
    token: int = -1


@dataclass(frozen=True)
class PromptEcho:
    """echo: candidate `index` starts with the prompt."""

    index: int
    text: bytes
    raw: bytes
    tokens: Tuple[TokenEntry, ...]


@dataclass(frozen=True)
class TokenSampled:
    """Candidate `index` sampled `token`. `text` is visible text that just became final (it can
    no longer be cut by a stop sequence), `tokens` the token entries that became final with it,
    `raw` the sampled token's raw piece (specials rendered)."""

    index: int
    token: int
    text: bytes
    raw: bytes
    tokens: Tuple[TokenEntry, ...] = ()


@dataclass(frozen=True)
class SequenceFinished:
    """Candidate `index` ended (its last TokenSampled released the rest of its text)."""

    index: int
    finish_reason: str


@dataclass(frozen=True)
class CandidatesDropped:
    """best_of: candidates that were generated but not returned, and their tokens."""

    count: int
    generated: int


@dataclass(frozen=True)
class Decoded:
    """Every candidate ended: the decode steps that sampled them, summed over candidates, the
    tokens they drafted from their own text (speculation) and the drafts they sampled."""

    decode_steps: int
    drafted_tokens: int
    accepted_drafts: int


EngineEvent = Union[PromptEcho, TokenSampled, SequenceFinished, CandidatesDropped, Decoded]
