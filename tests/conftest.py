"""Shared fixtures: the real default model, pulled on first use, and one client for the session."""

import pytest

from edgecomplete import Client, models

MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def smollm2_path():
    return models.pull(MODEL)


@pytest.fixture(scope="session")
def client(smollm2_path):
    with Client() as client:
        yield client


@pytest.fixture(scope="session")
def engine(client):
    return client.engine(MODEL)


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """An empty edgecomplete home and a pip that only sees the test's wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("EDGECOMPLETE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels
