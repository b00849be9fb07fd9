"""What the remote backends do with the network: retries with backoff for idempotent calls only,
timeouts and failures as clear errors, streams closed when their reader leaves; the README's
table is the support table; the CLI on a remote engine."""

import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgecomplete import BusyError, Client, CompletionRequest, Prompt, TokenizationRequest
from edgecomplete.cli import main
from edgecomplete.remote import RemoteError
from edgecomplete.remote.support import markdown_table

from ..conftest import MODEL
from ..server.conftest import app_server


class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, body, delay) of the server's script."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.seen.append(self.path)
        self.server.authorization.append(self.headers.get("authorization"))
        status, body, delay = self.server.script.pop(0) if self.server.script else (200, {}, 0)
        time.sleep(delay)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except BrokenPipeError:  # the client gave up (the timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.seen, server.authorization = [], [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def url(server, scheme="http"):
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl (to make a certificate) is not installed")
def test_tls_and_bearer_tokens(scripted, tmp_path):
    """https with a self-signed certificate: refused unless verify_ssl=False, as the Aleph
    client's option says; the token goes as a bearer token."""
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    scripted.socket = context.wrap_socket(scripted.socket, server_side=True)
    request = TokenizationRequest("hi", False, True)
    with Client(host=url(scripted, "https"), backend="aleph", token="s3cret") as strict:
        with pytest.raises(RemoteError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            strict.tokenize(request, MODEL)
    scripted.script = [(200, {"token_ids": [7]}, 0)]
    with Client(host=url(scripted, "https"), backend="aleph", token="s3cret", verify_ssl=False) as lenient:
        assert lenient.tokenize(request, MODEL).token_ids == [7]
    assert scripted.authorization[-1] == "Bearer s3cret"


def test_idempotent_calls_are_retried_with_backoff_and_completions_are_not(scripted):
    scripted.script = [(503, {"error": "loading"}, 0), (502, {"error": "bad gateway"}, 0), (200, {"token_ids": [1, 2]}, 0)]
    with Client(host=url(scripted), backend="aleph") as client:
        started = time.monotonic()
        assert client.tokenize(TokenizationRequest("hi", False, True), MODEL).token_ids == [1, 2]
        assert time.monotonic() - started >= 1.5  # waited 0.5 s, then 1 s
        assert scripted.seen == ["/tokenize"] * 3
        scripted.script, scripted.seen = [(503, {"error": "queue full", "code": "QUEUE_FULL"}, 0)], []
        with pytest.raises(BusyError, match="aleph backend .* is busy"):
            client.complete(CompletionRequest(prompt=Prompt.from_text("hi"), maximum_tokens=2), MODEL)
        scripted.script = [(500, {"error": "boom"}, 0)]
        with pytest.raises(RemoteError, match="/complete answered 500: boom"):
            client.complete(CompletionRequest(prompt=Prompt.from_text("hi"), maximum_tokens=2), MODEL)
        assert scripted.seen == ["/complete", "/complete"]  # never retried


def test_a_backend_that_does_not_answer_in_time_is_a_timeout(scripted):
    scripted.script = [(200, {}, 3)]
    with Client(host=url(scripted), backend="aleph", request_timeout_seconds=1) as client:
        with pytest.raises(RemoteError, match="timed out"):
            client.complete(CompletionRequest(prompt=Prompt.from_text("hi"), maximum_tokens=2), MODEL)


def test_leaving_a_stream_closes_it_at_the_backend(client, engine):
    with app_server(client) as served, Client(host=served, backend="aleph") as remote:
        request = CompletionRequest(prompt=Prompt.from_text("Once upon a time"), maximum_tokens=400, minimum_tokens=400)
        stream = remote.complete_with_streaming(request, MODEL)
        next(stream), next(stream)
        assert engine.stats()["requests_active"] == 1
        stream.close()
        deadline = time.monotonic() + 10
        while engine.stats()["requests_active"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.stats()["requests_active"] == 0


def test_the_readme_table_is_the_support_table():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert markdown_table() in readme


def test_the_cli_completes_on_a_remote_engine(llama_server_url, capsys):
    arguments = ["complete", "The capital of France is", "--max-tokens", "6", "--host", llama_server_url]
    assert main([*arguments, "--backend", "llama-server"]) == 0
    text = capsys.readouterr().out
    with Client(host=llama_server_url, backend="llama-server") as remote:
        expected = remote.complete(CompletionRequest(prompt=Prompt.from_text("The capital of France is"),
                                                     maximum_tokens=6), MODEL)
    assert text == expected.completions[0].completion + "\n"
    assert main([*arguments, "--backend", "llama-server", "--echo"]) == 2
    assert "echo: the llama-server backend cannot take it" in capsys.readouterr().err
    assert main(["complete", "Hi", "--host", "http://127.0.0.1:9", "--backend", "llama-server"]) == 2
    assert re.search(r"llama-server backend at http://127.0.0.1:9.* failed", capsys.readouterr().err)
