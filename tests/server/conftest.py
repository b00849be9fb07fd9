"""A real `edgecomplete serve` on loopback, on a free port, for the session; stopped at the end.
`app_server` serves a Client of this process over real HTTP instead, so that a test can look at
its engine (KV cells, sequences) from outside the server."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest
import uvicorn

from edgecomplete.server import create_app
from edgecomplete.server.app import server_config

from ..conftest import MODEL, sigint_as_in_a_terminal

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
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=sigint_as_in_a_terminal)
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


@contextmanager
def app_server(client, token=None):
    """The server app over `client`, run by uvicorn on a thread of this process: its URL."""
    with uvicorn_serving(create_app(client, [MODEL], token), "warning") as url:
        yield url


@contextmanager
def uvicorn_serving(app, log_level: str):
    """`app` served on a free loopback port, in a thread; yields its URL."""
    server = uvicorn.Server(server_config(app, "127.0.0.1", free_port(), log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def raw(server, method, path, body=b"", headers=None):
    """(status, parsed JSON body or raw bytes, headers) of a raw HTTP request."""
    address = urlparse(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.request(method, path, body=body,
                       headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload) if payload.startswith(b"{") else payload, dict(response.getheaders())


def open_stream(server, path, body, first_event=True):
    """A streaming POST, answered (and, with `first_event`, its first event arrived): (connection, response)."""
    address = urlparse(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.request("POST", path, body=json.dumps(body), headers={"Authorization": f"Bearer {TOKEN}"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    assert not first_event or response.read(6) == b"data: "
    return connection, response


def hang_up(connection) -> None:
    """Leave mid-stream as a client that goes away does (the response's file object would keep
    the socket open after a mere close)."""
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.sock.close()


@pytest.fixture(scope="session")
def server(smollm2_path):
    """The server's base URL (Aleph routes under / and /v1), with TOKEN required."""
    process, url = start_server("--token", TOKEN)
    yield url
    stop_server(process)
