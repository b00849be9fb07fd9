"""Prompts: what a completion continues. Data only, shaped like aleph_alpha_client's prompt module.

A `Prompt` is a sequence of items: `Text`, `Tokens` (token ids of the model) or `Image`.
The controls (`TextControl`, `TokenControl`, `ImageControl`) exist so that requests written for
the Aleph Alpha API deserialize; the local engine has no attention manipulation and rejects
a request whose items carry controls.
"""

from __future__ import annotations

import base64
import io
import urllib.request
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import InvalidRequest, shown


class ControlTokenOverlap(Enum):
    """How a control that covers part of a token applies to it: proportionally or fully."""

    Partial = "partial"
    Complete = "complete"

    def to_json(self) -> str:
        return self.value


def _overlap_from_json(value: Optional[str]) -> Optional[ControlTokenOverlap]:
    return None if value is None else ControlTokenOverlap(value)


@dataclass(frozen=True)
class TokenControl:
    """Attention factor for the token at index `pos` of a `Tokens` item."""

    pos: int
    factor: float

    def to_json(self) -> Mapping[str, Any]:
        return {"index": self.pos, "factor": self.factor}

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "TokenControl":
        return TokenControl(pos=json["index"], factor=json["factor"])


@dataclass(frozen=True)
class Tokens:
    """Token ids of the model, passed to it unchanged."""

    tokens: Sequence[int]
    controls: Sequence[TokenControl] = field(default_factory=list)

    def to_json(self) -> Mapping[str, Any]:
        return {
            "type": "token_ids",
            "data": list(self.tokens),
            "controls": [control.to_json() for control in self.controls],
        }

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "Tokens":
        controls = [TokenControl.from_json(c) for c in json.get("controls", [])]
        return Tokens(tokens=list(json["data"]), controls=controls)

    @staticmethod
    def from_token_ids(token_ids: Sequence[int]) -> "Tokens":
        return Tokens(list(token_ids), [])


@dataclass(frozen=True)
class TextControl:
    """Attention factor for `length` characters of a `Text` item from `start`."""

    start: int
    length: int
    factor: float
    token_overlap: Optional[ControlTokenOverlap] = None

    def to_json(self) -> Mapping[str, Any]:
        payload: Dict[str, Any] = {"start": self.start, "length": self.length, "factor": self.factor}
        if self.token_overlap is not None:
            payload["token_overlap"] = self.token_overlap.to_json()
        return payload

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "TextControl":
        return TextControl(
            start=json["start"],
            length=json["length"],
            factor=json["factor"],
            token_overlap=_overlap_from_json(json.get("token_overlap")),
        )


@dataclass(frozen=True)
class Text:
    """Text to be tokenized by the model's tokenizer."""

    text: str
    controls: Sequence[TextControl] = field(default_factory=list)

    def to_json(self) -> Mapping[str, Any]:
        return {
            "type": "text",
            "data": self.text,
            "controls": [control.to_json() for control in self.controls],
        }

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "Text":
        controls = [TextControl.from_json(c) for c in json.get("controls", [])]
        return Text(json["data"], controls)

    @staticmethod
    def from_text(text: str) -> "Text":
        return Text(text, [])


@dataclass(frozen=True)
class Cropping:
    """A square crop of an image: upper-left corner and side length in pixels."""

    upper_left_x: int
    upper_left_y: int
    size: int


@dataclass(frozen=True)
class ImageControl:
    """Attention factor for a rectangle of an image, in coordinates relative to the image (0..1)."""

    left: float
    top: float
    width: float
    height: float
    factor: float
    token_overlap: Optional[ControlTokenOverlap] = None

    def to_json(self) -> Mapping[str, Any]:
        payload: Dict[str, Any] = {
            "rect": {"left": self.left, "top": self.top, "width": self.width, "height": self.height},
            "factor": self.factor,
        }
        if self.token_overlap is not None:
            payload["token_overlap"] = self.token_overlap.to_json()
        return payload

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "ImageControl":
        rect = json["rect"]
        return ImageControl(
            left=rect["left"],
            top=rect["top"],
            width=rect["width"],
            height=rect["height"],
            factor=json["factor"],
            token_overlap=_overlap_from_json(json.get("token_overlap")),
        )


@dataclass(frozen=True)
class Image:
    """An image, kept base64-encoded (any format pillow reads) so that a prompt serializes to
    JSON as is. It takes a model with a vision projector.

    `cropping` takes a square of it; otherwise the whole image goes to the projector, whose own
    preprocessing fits it to the model (the Aleph Alpha API center-crops non-square images;
    llama.cpp's projectors pad, resize or tile them instead, which loses nothing).
    """

    base_64: str
    cropping: Optional[Cropping] = None
    controls: Sequence[ImageControl] = field(default_factory=list)

    @classmethod
    def from_bytes(
        cls,
        bytes: bytes,
        cropping: Optional[Cropping] = None,
        controls: Optional[Sequence[ImageControl]] = None,
    ) -> "Image":
        return cls(base64.b64encode(bytes).decode(), cropping, list(controls or []))

    @classmethod
    def from_file(cls, path: Union[str, Path], controls: Optional[Sequence[ImageControl]] = None) -> "Image":
        return cls.from_bytes(Path(path).read_bytes(), None, controls)

    @classmethod
    def from_file_with_cropping(
        cls,
        path: Union[str, Path],
        upper_left_x: int,
        upper_left_y: int,
        crop_size: int,
        controls: Optional[Sequence[ImageControl]] = None,
    ) -> "Image":
        cropping = Cropping(upper_left_x=upper_left_x, upper_left_y=upper_left_y, size=crop_size)
        return cls.from_bytes(Path(path).read_bytes(), cropping, controls)

    @classmethod
    def from_url(cls, url: str, controls: Optional[Sequence[ImageControl]] = None) -> "Image":
        """Download an image (the one network access edgecomplete makes, and only when asked)."""
        with urllib.request.urlopen(url) as response:
            return cls.from_bytes(response.read(), None, controls)

    @classmethod
    def from_url_with_cropping(cls, url: str, upper_left_x: int, upper_left_y: int, crop_size: int,
                               controls: Optional[Sequence[ImageControl]] = None) -> "Image":
        image = cls.from_url(url, controls)
        return cls(image.base_64, Cropping(upper_left_x, upper_left_y, crop_size), image.controls)

    @classmethod
    def from_image(cls, image: Any, cropping: Optional[Cropping] = None,
                   controls: Optional[Sequence[ImageControl]] = None) -> "Image":
        """A pillow image (saved as PNG)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return cls.from_bytes(buffer.getvalue(), cropping, controls)

    @classmethod
    def from_image_source(
        cls, image_source: Union[str, Path, bytes], controls: Optional[Sequence[ImageControl]] = None
    ) -> "Image":
        """An image from a path, a URL (a string with a scheme) or raw bytes."""
        if isinstance(image_source, bytes):
            return cls.from_bytes(image_source, None, controls)
        if isinstance(image_source, str) and "://" in image_source:
            return cls.from_url(image_source, controls)
        if isinstance(image_source, (str, Path)):
            return cls.from_file(image_source, controls)
        raise TypeError(f"image_source must be a path, a URL or bytes, not {type(image_source).__name__}")

    def to_json(self) -> Mapping[str, Any]:
        payload: Dict[str, Any] = {"type": "image", "data": self.base_64}
        if self.cropping is not None:
            payload["x"] = self.cropping.upper_left_x
            payload["y"] = self.cropping.upper_left_y
            payload["size"] = self.cropping.size
        payload["controls"] = [control.to_json() for control in self.controls]
        return payload

    @staticmethod
    def from_json(json: Mapping[str, Any]) -> "Image":
        cropping = None
        if "size" in json:
            cropping = Cropping(upper_left_x=json["x"], upper_left_y=json["y"], size=json["size"])
        controls = [ImageControl.from_json(c) for c in json.get("controls", [])]
        return Image(base_64=json["data"], cropping=cropping, controls=controls)

    def to_image(self):
        """The decoded image as a PIL image."""
        from PIL import Image as PILImage

        return PILImage.open(io.BytesIO(base64.b64decode(self.base_64)))

    def dimensions(self) -> tuple:
        image = self.to_image()
        return (image.width, image.height)


PromptItem = Union[Text, Tokens, Image]

# Where an image goes in a text (the CLI's prompt, a chat message): llama.cpp's media marker.
IMAGE_MARKER = "<__media__>"


def with_images(text: str, images: Sequence[Image]) -> "Prompt":
    """`text` with `images` in place of its IMAGE_MARKERs, in order; images beyond the markers
    follow the text. More markers than images raise ValueError."""
    pieces = text.split(IMAGE_MARKER)
    if len(pieces) - 1 > len(images):
        raise ValueError(f"prompt: {len(pieces) - 1} image markers {IMAGE_MARKER} but {len(images)} images")
    items: List[PromptItem] = []
    for index, piece in enumerate(pieces):
        if piece:
            items.append(Text(piece, []))
        if index < len(pieces) - 1:
            items.append(images[index])
    items.extend(images[len(pieces) - 1:])
    return Prompt(items)


@dataclass(frozen=True, init=False)
class Prompt:
    """The items a completion continues, in order. `Prompt("text")` is `Prompt([Text("text")])`."""

    items: Sequence[PromptItem]

    def __init__(self, items: Union[str, Sequence[PromptItem]]):
        if isinstance(items, str):
            items = [Text(items, [])]
        object.__setattr__(self, "items", list(items))

    @staticmethod
    def from_text(text: str, controls: Optional[Sequence[TextControl]] = None) -> "Prompt":
        return Prompt([Text(text, list(controls or []))])

    @staticmethod
    def from_image(image: Image) -> "Prompt":
        return Prompt([image])

    @staticmethod
    def from_tokens(tokens: Sequence[int], controls: Optional[Sequence[TokenControl]] = None) -> "Prompt":
        return Prompt([Tokens(list(tokens), list(controls or []))])

    def to_json(self) -> List[Mapping[str, Any]]:
        return [item.to_json() for item in self.items]

    @staticmethod
    def from_json(items_json: Union[str, Sequence[Mapping[str, Any]]]) -> "Prompt":
        """A prompt from the API's JSON: a list of items, or a plain string (one Text). Anything
        else raises InvalidRequest naming the prompt and the item."""
        if isinstance(items_json, str):
            return Prompt.from_text(items_json)
        if not isinstance(items_json, list):
            raise InvalidRequest("prompt", f"must be a string or a list of items, got {type(items_json).__name__}")
        parsers = {"text": Text.from_json, "token_ids": Tokens.from_json, "image": Image.from_json}
        items = []
        for position, item in enumerate(items_json):
            if not isinstance(item, dict):
                raise InvalidRequest("prompt", f"item {position} must be an object, got {shown(item)}")
            kind = item.get("type")
            if not isinstance(kind, str) or kind not in parsers:
                raise InvalidRequest("prompt", f"item {position} has unknown item type {shown(kind)}; allowed: "
                                     "text, token_ids, image")
            try:
                items.append(parsers[kind](item))
            except InvalidRequest:
                raise
            except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as error:
                raise InvalidRequest("prompt", f"item {position} ({kind}) is malformed: "
                                     f"{type(error).__name__} {shown(str(error))}") from None
        return Prompt(items)
