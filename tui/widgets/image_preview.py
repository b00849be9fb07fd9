"""An image in the terminal: half blocks ("▀"), each cell two pixels stacked, the upper one in the
foreground colour and the lower one in the background. Any terminal with true colour shows it."""

from __future__ import annotations

import base64
import io

from rich.style import Style
from rich.text import Text


def half_blocks(base_64: str, columns: int = 32, rows: int = 12) -> Text:
    """The image fitted into `columns` x `rows` cells, never enlarged (its aspect kept; a cell is
    two pixels high, so about square pixels); a one-line note if it cannot be read."""
    from PIL import Image as PILImage, ImageOps

    try:
        picture = PILImage.open(io.BytesIO(base64.b64decode(base_64)))
        picture = ImageOps.exif_transpose(picture).convert("RGB")
    except Exception:  # whatever pillow makes of bad data: the message still shows
        return Text("[an image that cannot be shown]", style="italic dim")
    scale = min(columns / picture.width, 2 * rows / picture.height, 1.0)  # never larger than it is
    width, height = max(1, round(picture.width * scale)), max(2, round(picture.height * scale))
    height += height % 2
    pixels = picture.resize((width, height), PILImage.Resampling.BILINEAR).load()
    text = Text()
    for y in range(0, height, 2):
        for x in range(width):
            upper, lower = pixels[x, y], pixels[x, y + 1]
            text.append("▀", Style(color=f"rgb{upper}", bgcolor=f"rgb{lower}"))
        text.append("\n")
    text.rstrip()
    return text
