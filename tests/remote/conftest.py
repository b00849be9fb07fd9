"""Real servers on loopback for the remote backends: llama.cpp's llama-server (built once per
machine from the llama.cpp source llama-cpp-python 0.3.36 vendors: tests/servers/llama_server.py)
and edgecomplete's own `serve`, both on smollm2-135m; and a local client to compare with."""

import os

import pytest

from edgecomplete import Client
from edgecomplete.engine.llama import default_kv_cache

from ..servers import llama_server
from ..server.conftest import TOKEN, start_server, stop_server


@pytest.fixture(scope="session")
def llama_server_url(smollm2_path):
    # Four slots (n and best_of take one each); flash attention as edgecomplete's CPU default.
    if os.environ.get("EDGECOMPLETE_TEST_LLAMA_SERVER"):  # one already running (debugging)
        yield os.environ["EDGECOMPLETE_TEST_LLAMA_SERVER"]
        return
    with llama_server.running(smollm2_path, "-c", "8192", "--parallel", "4", "-fa", "on",
                              "-ctk", default_kv_cache(), "-ctv", default_kv_cache()) as url:
        yield url


@pytest.fixture(scope="session")
def serve_url(smollm2_path):
    process, url = start_server("--token", TOKEN)
    yield url
    stop_server(process)


@pytest.fixture(scope="session")
def local(smollm2_path):
    with Client(prefix_cache=False) as client:  # every prompt evaluated whole, as the servers do
        yield client
