"""An image attached in a real terminal: `edgecomplete tui --mmproj` under tmux, the image's path
typed and sent in one burst (as a fast typist or a terminal without bracketed paste delivers a
dropped file) and pasted (as a terminal pastes a dropped file), previewed, and sent with the
next message to the real model through the synthetic projector."""

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image as PILImage

from ..fixtures.projector import write_projector
from .test_tui_terminal import TMUX, Terminal, rows

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (make test installs it)")


@pytest.fixture
def vision_terminal(tmp_path, smollm2_path):
    projector = write_projector(tmp_path / "mmproj.gguf", scale=4.0)
    config = tmp_path / "tui.toml"
    config.write_text("[defaults]\nmaximum_tokens = 3\n")
    data = tmp_path / "data"
    term = Terminal(f"edgecomplete-images-{os.getpid()}")
    env = {"EDGECOMPLETE_DATA": str(data), "EDGECOMPLETE_CONFIG": str(config), "TERM": "xterm-256color"}
    options = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    term.tmux("-f", "/dev/null", "new-session", "-d", "-s", "ui", "-x", "120", "-y", "40", *options,
              f"{sys.executable} -m edgecomplete tui --mmproj {projector}")
    term.db = data / "tui.sqlite3"
    try:
        term.wait(lambda: re.search(r"\d+/[1-9]\d*", term.screen()), "the model to load")
        yield term
    finally:
        subprocess.run([TMUX, "-L", term.socket, "kill-server"], capture_output=True)


def test_an_image_path_typed_or_pasted_attaches_it_and_the_message_carries_it(vision_terminal, tmp_path):
    term = vision_terminal
    photo = tmp_path / "my photo.png"
    PILImage.new("RGB", (48, 32), (200, 40, 40)).save(photo)
    term.send(str(photo).replace(" ", "\\ "), "Enter")  # typed, Enter in the same burst
    term.wait(lambda: "images for the next message: my photo.png" in term.screen(), "the attachment")
    term.tmux("set-buffer", f"'{photo}'")
    term.tmux("paste-buffer", "-p", "-t", "ui")  # bracketed, as a terminal pastes a dropped file
    term.wait(lambda: "my photo.png, my photo.png" in term.screen(), "the pasted attachment")
    term.send("What is in the picture?", "Enter")
    term.wait(lambda: rows(term, "SELECT 1 FROM turns WHERE role = 'assistant' AND response IS NOT NULL"),
              "the reply")
    ((content, images),) = rows(term, "SELECT content, images FROM turns WHERE role = 'user'")
    assert content == "What is in the picture?" and len(json.loads(images)) == 2
    assert term.screen().count("▀▀▀▀") >= 2 and "images for the next message" not in term.screen()
