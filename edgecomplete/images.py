"""Images of a prompt, made ready for a vision projector: decoded, turned upright, cropped and
converted to RGB with pillow. No llama.cpp here (engine/vision.py takes it from there).

The projector's own preprocessing resizes (llava pads to a square, Gemma 3 stretches, SmolVLM
tiles), so an image is passed whole unless its `cropping` asks for a square of it. Its key, a
hash of the pixels that go in, lets a later prompt reuse the image's KV cells: the same picture
in another file format or with other metadata is the same image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import warnings
from dataclasses import dataclass

from .prompt import Image
from .validation import InvalidRequest

# An image may have at most this many pixels (a 20000 x 20000 image is refused before its pixels
# are decoded: a small file can unpack to gigabytes).
MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class PreparedImage:
    """An image's RGB pixels, row by row (width x height x 3 bytes), and their hash."""

    width: int
    height: int
    rgb: bytes = b""
    key: str = ""

    def __repr__(self) -> str:
        return f"PreparedImage({self.width}x{self.height}, {self.key[:12]})"


def prepare(image: Image, position: int) -> PreparedImage:
    """The pixels a projector gets of `image`, item `position` of a prompt; a bad image raises
    InvalidRequest naming the item and what is wrong."""
    from PIL import Image as PILImage, ImageOps, UnidentifiedImageError

    def refuse(reason: str) -> InvalidRequest:
        return InvalidRequest("prompt", f"item {position} (image): {reason}")

    if not isinstance(image.base_64, str):
        raise refuse(f"data must be a base64 string, got {type(image.base_64).__name__}")
    try:
        data = base64.b64decode(image.base_64, validate=True)
    except (binascii.Error, ValueError):
        raise refuse("data is not valid base64") from None
    if not data:
        raise refuse("data is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            picture = PILImage.open(io.BytesIO(data))
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise refuse(f"{width}x{height} pixels, more than the {MAX_PIXELS:,} allowed; scale it down")
            if width < 1 or height < 1:
                raise refuse(f"{width}x{height} pixels: an image needs at least one")
            picture.load()
            picture = ImageOps.exif_transpose(picture)  # as the camera held it
            picture = _rgb(picture)
    except InvalidRequest:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as error:
        raise refuse(f"more than the {MAX_PIXELS:,} pixels allowed ({error}); scale it down") from None
    except UnidentifiedImageError:
        raise refuse("not an image pillow can read (PNG, JPEG, GIF, WebP, BMP, ...), or a corrupt one") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # truncated or malformed data
        raise refuse(f"the image data is corrupt ({error})") from None
    if image.cropping is not None:
        picture = _crop(picture, image, refuse)
    rgb = picture.tobytes()
    key = hashlib.sha256(f"{picture.width}x{picture.height}:".encode() + rgb).hexdigest()
    return PreparedImage(picture.width, picture.height, rgb, key)


def _rgb(picture):
    """RGB pixels; transparent parts are laid on white (as a viewer shows them), CMYK and
    palette images converted."""
    from PIL import Image as PILImage

    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA", "PA"):
        picture = picture.convert("RGBA")
        background = PILImage.new("RGBA", picture.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, picture).convert("RGB")
    if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float greyscale
        picture = picture.point(lambda v: v / 256).convert("L") if picture.mode.startswith("I;16") else picture.convert("L")
    return picture.convert("RGB")


def _crop(picture, image: Image, refuse):
    crop = image.cropping
    x, y, size = crop.upper_left_x, crop.upper_left_y, crop.size
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y, size)):
        raise refuse(f"cropping x, y and size must be integers, got {x!r}, {y!r}, {size!r}")
    if x < 0 or y < 0 or size < 1 or x + size > picture.width or y + size > picture.height:
        raise refuse(f"cropping x={x}, y={y}, size={size} is not inside the {picture.width}x{picture.height} "
                     "image (x, y >= 0, size >= 1, x + size <= width, y + size <= height)")
    return picture.crop((x, y, x + size, y + size))
