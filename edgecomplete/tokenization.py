"""Tokenization requests and responses, as in aleph_alpha_client's tokenization and
detokenization modules. Data only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Sequence


@dataclass(frozen=True)
class TokenizationRequest:
    """prompt: the text to split into tokens; tokens: return their texts; token_ids: their ids."""

    prompt: str
    tokens: bool
    token_ids: bool

    def to_json(self) -> Mapping[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TokenizationResponse:
    tokens: Optional[Sequence[str]] = None
    token_ids: Optional[Sequence[int]] = None

    @staticmethod
    def from_json(json: Dict[str, Any]) -> "TokenizationResponse":
        return TokenizationResponse(tokens=json.get("tokens"), token_ids=json.get("token_ids"))


@dataclass(frozen=True)
class DetokenizationRequest:
    """token_ids: the tokens whose text is wanted."""

    token_ids: Sequence[int]

    def to_json(self) -> Mapping[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DetokenizationResponse:
    result: str

    @staticmethod
    def from_json(json: Dict[str, Any]) -> "DetokenizationResponse":
        return DetokenizationResponse(result=json["result"])
