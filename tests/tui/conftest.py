"""The UI tests' apps: the real default model through the session's client (tests/conftest.py),
the data folder the test's own."""

import pytest

from tui import EdgeCompleteApp
from tui.config import Config

from ..conftest import MODEL
from .helpers import drive


@pytest.fixture
def make_app(client, tmp_path):
    """A new app; made twice in a test, the second one reopens what the first kept."""
    def make(config=None, model=MODEL):
        return EdgeCompleteApp(model=model, client=client, data=tmp_path / "data", config=config or Config())
    return make


@pytest.fixture
def run_ui(make_app):
    """`run_ui(scenario, size=(w, h), config=..., model=...)`: a new app (make_app's options),
    driven through `await scenario(pilot, app)` once its model has loaded; what it returns."""
    def run(scenario, size=(120, 36), **options):
        return drive(make_app(**options), scenario, size)
    return run
