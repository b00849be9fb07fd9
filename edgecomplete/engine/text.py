"""Candidate text release: which of a candidate's text and token entries are final.

A stop sequence can start in the text already generated, so text is handed out only up to the
C stop matcher's `stable_length` (no stop sequence can cut it any more); at the end, up to the
stop. Token entries (completion_tokens, log_probs) follow the text: a token is reported once
its bytes are final, and the token in which a stop sequence starts is shortened to the text
before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Tuple

from ..sampling import Sequence, StepResult, Vocabulary
from .events import TokenEntry


def spelled(vocabulary: Vocabulary, top: Tuple[Tuple[int, float], ...]) -> Tuple[Tuple[int, bytes, float], ...]:
    """Alternatives (token, log-prob) with their raw text, as TokenEntry carries them."""
    return tuple((token, vocabulary.piece(token, raw=True), logprob) for token, logprob in top)


@dataclass
class _UnreleasedToken:
    token: int
    start: int  # its visible byte span in the candidate's text
    end: int
    logprob: float
    top: Tuple[Tuple[int, float], ...]


@dataclass
class CandidateText:
    """What of one candidate's text has been handed out."""

    sequence: Sequence
    vocabulary: Vocabulary
    released_bytes: int = 0  # visible bytes handed out
    generated_bytes: int = 0  # visible bytes generated (before any stop cut)
    unreleased: List[_UnreleasedToken] = field(default_factory=list)

    def release(self, result: StepResult, finished: bool, token_entries: bool) -> Tuple[bytes, Tuple[TokenEntry, ...]]:
        """The text and (with `token_entries`) token entries that `result` made final."""
        final_length = result.text_length if finished else result.stable_length
        text = self.sequence.text_slice(self.released_bytes, final_length)
        self.released_bytes = final_length
        if not token_entries:
            return text, ()
        start = self.generated_bytes
        self.generated_bytes += len(self.vocabulary.piece(result.token))
        self.unreleased.append(_UnreleasedToken(result.token, start, self.generated_bytes, result.logprob, result.top))
        return text, tuple(self._final_entries(final_length, finished))

    def _final_entries(self, final_length: int, finished: bool) -> Iterator[TokenEntry]:
        """Unreleased tokens that lie within the final text. At the end, the token in which a stop
        sequence starts is shortened to the text before it, and the tokens after it dropped."""
        vocabulary = self.vocabulary
        while self.unreleased:
            pending = self.unreleased[0]
            if pending.end <= final_length:
                text = vocabulary.piece(pending.token, raw=True)
            elif finished and pending.start < final_length:
                text = vocabulary.piece(pending.token)[: final_length - pending.start]
            elif finished:
                self.unreleased.clear()  # after the cut
                return
            else:
                return  # not final yet
            self.unreleased.pop(0)
            yield TokenEntry(text, pending.logprob, spelled(vocabulary, pending.top), pending.token)
