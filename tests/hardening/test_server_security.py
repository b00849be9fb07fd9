"""The server as a program others call: loopback by default, a token on every route but
version, no request names a file to read, bounded bodies, and slow clients (slowloris) let go
without starving anyone; no secret in its log."""

import json
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from edgecomplete.server import app as server_app

from ..server.conftest import TOKEN, app_server, raw, start_server, stop_server


@pytest.fixture
def quick_timeouts(monkeypatch):
    monkeypatch.setattr(server_app, "HEAD_SECONDS", 1.0)
    monkeypatch.setattr(server_app, "BODY_SECONDS", 1.0)


def connect(url):
    address = urlparse(url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def test_slow_heads_and_bodies_are_let_go_and_others_are_served_meanwhile(client, quick_timeouts):
    with app_server(client) as url:
        slow = [connect(url) for _ in range(20)]  # more than uvicorn would ever need to starve
        for connection in slow:
            connection.sendall(b"POST /complete HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        status, body, _ = raw(url, "POST", "/tokenize", json.dumps(
            {"model": "smollm2-135m", "prompt": "hi", "tokens": False, "token_ids": True}).encode())
        assert status == 200 and body["token_ids"]  # served while they hang on
        time.sleep(1.5)
        for connection in slow:
            assert connection.recv(100) == b""  # closed by the server
        trickle = connect(url)
        trickle.sendall(b"POST /complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 1000\r\n\r\n{\"model\"")
        answer = b""
        while b"REQUEST_TIMEOUT" not in answer and (part := trickle.recv(1000)):
            answer += part
        assert b"408" in answer.split(b"\r\n")[0] and b"REQUEST_TIMEOUT" in answer


def test_every_route_but_version_needs_the_token_and_models_are_names_not_paths(client):
    with app_server(client, token=TOKEN) as url:
        assert raw(url, "GET", "/version", headers={"Authorization": ""})[0] == 200
        for method, path in (("GET", "/models_available"), ("POST", "/complete"), ("POST", "/evaluate"),
                             ("POST", "/tokenize"), ("POST", "/detokenize"), ("POST", "/steering_concepts"),
                             ("POST", "/chat_template"), ("GET", "/v1/models"), ("POST", "/v1/completions"),
                             ("POST", "/v1/chat/completions"), ("POST", "/v1/complete")):
            status, _, _ = raw(url, method, path, b"{}", headers={"Authorization": "Bearer wrong"})
            assert status == 401, path
        for model in ("/etc/passwd", "../../models/x.gguf", "~/.ssh/id_rsa"):
            status, body, _ = raw(url, "POST", "/complete", json.dumps({"model": model, "prompt": "x"}).encode())
            assert status == 404 and "unknown model" in body["error"]
        status, body, _ = raw(url, "POST", "/complete", b"x" * (server_app.MAX_BODY_BYTES + 1))
        assert status == 413


def test_the_server_binds_loopback_by_default_and_logs_no_token(smollm2_path):
    process, url = start_server("--token", TOKEN)
    try:
        assert urlparse(url).hostname == "127.0.0.1"
        raw(url, "GET", "/models_available")
        raw(url, "GET", "/models_available", headers={"Authorization": "Bearer wrong"})
    finally:
        stop_server(process)
    log = process.stderr.read().decode()
    assert "serving" in log and TOKEN not in log and "wrong" not in log
    listening = subprocess.run([sys.executable, "-m", "edgecomplete", "serve", "--help"], capture_output=True, text=True)
    assert "default 127.0.0.1" in listening.stdout
