"""Steering concepts: made from paired examples (negative -> positive), applied by id in
`steering_concepts`. Data shaped like aleph_alpha_client's steering module, and the store that
keeps concepts (and their per-model vectors) in the user's data folder.

A concept is its examples; its id is the sha256 of their canonical JSON, so the same examples
give the same id on every machine. It has no model: the vectors are made per model on first use
with that model (engine/steering.py) and cached beside the concept. Files are written whole
(a temporary file renamed into place): a crash never leaves half a concept.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .validation import InvalidRequest, is_concept_id

MAX_EXAMPLES = 1000
MAX_EXAMPLE_CHARS = 2000  # each text; its tokens must also fit the capture context (engine/steering.py)


@dataclass(frozen=True)
class SteeringPairedExample:
    """One pair: the same content said the unwanted way (negative) and the wanted way (positive)."""

    negative: str
    positive: str

    def to_json(self) -> Mapping[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SteeringConceptCreationRequest:
    """The examples of a new concept (at least one pair; neither text empty)."""

    examples: List[SteeringPairedExample]

    def to_json(self) -> Mapping[str, Any]:
        return {"examples": [example.to_json() for example in self.examples]}

    @staticmethod
    def from_json(json: Any) -> "SteeringConceptCreationRequest":
        examples = json.get("examples") if isinstance(json, Mapping) else None
        if not isinstance(examples, list):
            raise InvalidRequest("examples", f"must be a list of {{\"negative\", \"positive\"}} pairs, got {examples!r:.80}")
        pairs = []
        for i, example in enumerate(examples):
            if not isinstance(example, Mapping) or set(example) != {"negative", "positive"}:
                raise InvalidRequest(f"examples[{i}]", f"must be {{\"negative\": text, \"positive\": text}}, "
                                     f"got {example!r:.80}")
            pairs.append(SteeringPairedExample(example["negative"], example["positive"]))
        return SteeringConceptCreationRequest(pairs)


@dataclass(frozen=True)
class SteeringConceptCreationResponse:
    id: str

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "SteeringConceptCreationResponse":
        return SteeringConceptCreationResponse(id=json["id"])

    def to_json(self) -> Mapping[str, Any]:
        return {"id": self.id}


def check_examples(examples: Sequence[SteeringPairedExample]) -> None:
    if not isinstance(examples, (list, tuple)) or not examples:
        raise InvalidRequest("examples", "must hold at least one pair of texts")
    if len(examples) > MAX_EXAMPLES:
        raise InvalidRequest("examples", f"at most {MAX_EXAMPLES} pairs, got {len(examples)}")
    for i, example in enumerate(examples):
        for side in ("negative", "positive"):
            text = getattr(example, side, None)
            if not isinstance(text, str) or not text.strip():
                raise InvalidRequest(f"examples[{i}].{side}", f"must be a non-empty text, got {text!r:.80}")
            if len(text) > MAX_EXAMPLE_CHARS:
                raise InvalidRequest(f"examples[{i}].{side}", f"at most {MAX_EXAMPLE_CHARS} characters, got {len(text)}")
        if example.negative == example.positive:
            raise InvalidRequest(f"examples[{i}]", "negative and positive are the same text: the pair shows no difference")


def concept_id(examples: Sequence[SteeringPairedExample]) -> str:
    """The sha256 of the examples' canonical JSON: the same examples, the same id."""
    canonical = json.dumps([[e.negative, e.positive] for e in examples], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def data_dir() -> Path:
    """The user's data folder ($EDGECOMPLETE_DATA, else $XDG_DATA_HOME/edgecomplete, else
    ~/.local/share/edgecomplete): steering concepts, the terminal UI's sessions."""
    if os.environ.get("EDGECOMPLETE_DATA"):
        return Path(os.environ["EDGECOMPLETE_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "edgecomplete"


def write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ConceptStore:
    """Concepts on disk: `<root>/<id>.json` (the examples) and `<root>/<id>/<model key>.npy` (the
    vectors made for one model)."""

    def __init__(self, root: Optional[Path] = None):
        self.root = root if root is not None else data_dir() / "steering"

    def add(self, examples: Sequence[SteeringPairedExample]) -> str:
        check_examples(examples)
        identifier = concept_id(examples)
        path = self.root / f"{identifier}.json"
        if not path.exists():
            body = {"id": identifier, "examples": [e.to_json() for e in examples]}
            write_whole(path, json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8"))
        return identifier

    def examples(self, identifier: str) -> List[SteeringPairedExample]:
        if not is_concept_id(identifier):
            raise InvalidRequest("steering_concepts", f"{identifier!r:.80} is not a concept id (64 hex digits)")
        path = self.root / f"{identifier}.json"
        try:
            body = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise InvalidRequest("steering_concepts", f"unknown steering concept {identifier}: create it first "
                                 "(`edgecomplete steering create`, Client.create_steering_concept)") from None
        return [SteeringPairedExample(e["negative"], e["positive"]) for e in body["examples"]]

    def list(self) -> List[Dict[str, Any]]:
        """Every concept: id, its pairs' count, the first pair (to recognise it), the models it has vectors for."""
        concepts = []
        for path in sorted(self.root.glob("*.json")) if self.root.exists() else []:
            try:
                body = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            vectors = self.root / path.stem
            concepts.append({"id": path.stem, "pairs": len(body["examples"]),
                             "first": body["examples"][0] if body["examples"] else None,
                             "imported": body.get("imported"),
                             "models": sorted(p.stem for p in vectors.glob("*.npy")) if vectors.exists() else []})
        return concepts

    def add_imported(self, identifier: str, file_name: str, model_key: str, vectors: bytes, vectors_path: Path) -> None:
        """Keep a concept imported from a control-vector file: its vectors, for one model only."""
        write_whole(vectors_path, vectors)
        body = {"id": identifier, "examples": [], "imported": {"file": file_name, "model": model_key}}
        write_whole(self.root / f"{identifier}.json", json.dumps(body, indent=1).encode("utf-8"))

    def imported(self, identifier: str) -> Optional[Dict[str, str]]:
        """Where an imported concept came from (None for one made from examples)."""
        path = self.root / f"{identifier}.json"
        if not path.exists():
            return None
        return json.loads(path.read_text("utf-8")).get("imported")

    def vectors_path(self, identifier: str, model_key: str) -> Path:
        return self.root / identifier / f"{model_key}.npy"
