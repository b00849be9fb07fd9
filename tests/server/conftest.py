"""A real `edgecomplete serve` on loopback, on a free port, for the session; stopped at the end."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ..conftest import MODEL

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(*options: str):
    """`edgecomplete serve --model MODEL --port <free> *options`, once it answers: (process, URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecomplete", "serve", "--model", MODEL, "--port", str(port), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/version", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"edgecomplete serve exited: {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("edgecomplete serve did not answer within 120 s")
        time.sleep(0.2)


def stop_server(process) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def server(smollm2_path):
    """The server's base URL (Aleph routes under / and /v1), with TOKEN required."""
    process, url = start_server("--token", TOKEN)
    yield url
    stop_server(process)
