"""Images made ready for a projector (edgecomplete.images): decoded, upright, cropped, RGB, hashed;
bad or hostile ones refused with the item named. No model needed."""

import base64
import io
import struct
import zlib

import pytest
from PIL import Image as PILImage

from edgecomplete import CompletionRequest, Image, InvalidRequest, Prompt, Text, check_request
from edgecomplete.images import MAX_PIXELS, prepare
from edgecomplete.prompt import Cropping, ImageControl, with_images


def encoded(picture, fmt="PNG", **options) -> Image:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return Image.from_bytes(buffer.getvalue())


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size (and holds almost nothing): what a decompression bomb looks like."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def pixels(prepared):
    return PILImage.frombytes("RGB", (prepared.width, prepared.height), prepared.rgb)


def test_the_same_pixels_give_the_same_key_whatever_the_file_format():
    picture = PILImage.new("RGB", (30, 20), (10, 200, 30))
    keys = {prepare(encoded(picture, fmt), 0).key for fmt in ("PNG", "BMP", "TIFF", "PPM")}
    assert len(keys) == 1  # lossless formats: the same pixels
    assert prepare(encoded(PILImage.new("RGB", (30, 20), (10, 200, 31))), 0).key not in keys


@pytest.mark.parametrize("mode, expected", [
    ("CMYK", None), ("L", (77, 77, 77)), ("P", (0, 0, 255)), ("RGBA", (255, 255, 255)), ("LA", (255, 255, 255)),
])
def test_every_colour_mode_becomes_rgb(mode, expected):
    if mode == "P":
        picture = PILImage.new("RGB", (8, 8), (0, 0, 255)).convert("P", palette=PILImage.ADAPTIVE)
    elif mode in ("RGBA", "LA"):
        picture = PILImage.new(mode, (8, 8))  # fully transparent: shown on white
    elif mode == "L":
        picture = PILImage.new("L", (8, 8), 77)
    else:
        picture = PILImage.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    prepared = prepare(encoded(picture, "TIFF" if mode == "CMYK" else "PNG"), 0)
    red, green, blue = pixels(prepared).getpixel((3, 3))
    if expected is None:
        assert red > 200 and green < 60 and blue < 60
    else:
        assert (red, green, blue) == expected


def test_a_palette_image_with_a_transparent_colour_is_laid_on_white():
    picture = PILImage.new("P", (4, 4), 0)
    picture.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    picture.info["transparency"] = 0
    assert pixels(prepare(encoded(picture, transparency=0), 0)).getpixel((1, 1)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    picture = PILImage.new("RGB", (40, 20), (0, 0, 0))
    picture.paste((255, 0, 0), (0, 0, 10, 20))  # the left quarter red
    exif = PILImage.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to show"
    prepared = prepare(encoded(picture, "JPEG", exif=exif, quality=95), 0)
    assert (prepared.width, prepared.height) == (20, 40)
    top = pixels(prepared).getpixel((10, 3))
    assert top[0] > 200 and top[1] < 60  # the red quarter is on top now


def test_cropping_takes_the_square_asked_for():
    picture = PILImage.new("RGB", (40, 30), (0, 0, 0))
    picture.paste((0, 255, 0), (20, 10, 30, 20))
    image = encoded(picture)
    cropped = prepare(Image(image.base_64, Cropping(20, 10, 10)), 0)
    assert (cropped.width, cropped.height) == (10, 10)
    assert {pixels(cropped).getpixel((x, y)) for x in range(10) for y in range(10)} == {(0, 255, 0)}
    for bad in (Cropping(35, 0, 10), Cropping(-1, 0, 5), Cropping(0, 0, 0), Cropping(0, 25, 10)):
        with pytest.raises(InvalidRequest, match=r"item 2 \(image\): cropping .* not inside the 40x30 image"):
            prepare(Image(image.base_64, bad), 2)


@pytest.mark.parametrize("data, message", [
    (b"not an image at all", "not an image pillow can read"),
    (b"", "empty"),
    (png_header(20000, 20000), "more than the 64,000,000 pixels allowed"),
    (png_header(9000, 8000), "9000x8000 pixels, more than the 64,000,000 allowed"),
    (png_header(0, 10), "not an image pillow can read|at least one"),
])
def test_bad_and_hostile_images_are_refused_naming_the_item(data, message):
    with pytest.raises(InvalidRequest, match=message) as refused:
        prepare(Image.from_bytes(data), 3)
    assert refused.value.field == "prompt" and "item 3 (image)" in str(refused.value)


def test_truncated_and_non_base64_data_are_refused():
    whole = base64.b64decode(encoded(PILImage.effect_noise((64, 64), 50).convert("RGB")).base_64)
    with pytest.raises(InvalidRequest, match="corrupt|not an image"):
        prepare(Image.from_bytes(whole[: len(whole) // 2]), 0)
    with pytest.raises(InvalidRequest, match="not valid base64"):
        prepare(Image("@@@ not base64 @@@"), 0)
    assert MAX_PIXELS >= 4096 * 4096  # a large photo is fine


def test_echo_and_controls_with_images_are_refused_before_any_model():
    image = encoded(PILImage.new("RGB", (4, 4)))
    with pytest.raises(InvalidRequest, match="cannot echo a prompt with Image items") as refused:
        check_request(CompletionRequest(prompt=Prompt([Text.from_text("a"), image]), echo=True))
    assert refused.value.field == "echo"
    controlled = Image(image.base_64, None, [ImageControl(0, 0, 0.5, 0.5, 2.0)])
    with pytest.raises(InvalidRequest, match="item 0 has attention controls"):
        check_request(CompletionRequest(prompt=Prompt([controlled])))


def test_markers_place_images_in_text():
    red, blue = (encoded(PILImage.new("RGB", (2, 2), c)) for c in ((255, 0, 0), (0, 0, 255)))
    assert with_images("a <__media__> b", [red, blue]).items == [Text("a ", []), red, Text(" b", []), blue]
    assert with_images("<__media__>", [red]).items == [red]
    with pytest.raises(ValueError, match="2 image markers"):
        with_images("<__media__><__media__>", [red])
