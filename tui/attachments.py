"""Images attached to chat messages: a path as the user gives it (typed, or dropped on the
terminal, which pastes it quoted, escaped or as a file:// URL), the image read from it and checked
as the engine will check it, and a session's conversation with IMAGE_MARKER where its images go."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlparse

from edgecomplete import Image, InvalidRequest
from edgecomplete.images import prepare
from edgecomplete.prompt import IMAGE_MARKER

from .session import Session

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
NO_VISION = ("this model has no vision projector: start with --mmproj PATH, or pick a model registered "
             "with one (edgecomplete models add NAME --gguf ... --mmproj ...)")


def dropped_path(text: str) -> Optional[Path]:
    """The image file `text` names, as a terminal pastes a dropped file ('/a b.png', /a\\ b.png,
    file:///a%20b.png); None if it names no existing image file."""
    text = text.strip()
    if not text or "\n" in text:
        return None
    candidates = [text]  # as typed (spaces and all), or as a shell would read it
    if text.startswith("file://"):
        candidates = [unquote(urlparse(text).path)]
    else:
        try:
            words = shlex.split(text)
        except ValueError:
            words = []
        candidates += words if len(words) == 1 else []
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            return path
    return None


def read_image(text: str, vision: bool) -> Image:
    """The image at the path `text`, checked as the engine will check it; ValueError says what is
    wrong (a model that takes no images, no such file, not an image)."""
    if not vision:
        raise ValueError(NO_VISION)
    path = dropped_path(text) or Path(text.strip()).expanduser()
    try:
        image = Image.from_file(path)
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    try:
        prepare(image, 0)
    except InvalidRequest as error:
        raise ValueError(f"{path.name}: {str(error).split('(image): ', 1)[-1]}") from None
    return image


def conversation(session: Session) -> Tuple[List[Dict[str, str]], List[Image]]:
    """The session's messages for the chat template, each message's images marked after its
    text (IMAGE_MARKER), and those images in order: with_images(rendered, images) puts them back."""
    messages = [{"role": "system", "content": session.system_prompt}] if session.system_prompt else []
    images: List[Image] = []
    for turn in session.turns:
        messages.append({"role": turn.role, "content": turn.content + IMAGE_MARKER * len(turn.images)})
        images += [Image(data, None, []) for data in turn.images]
    return messages, images
