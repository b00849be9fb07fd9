"""llama.cpp's llama-server, built from the llama.cpp source that llama-cpp-python 0.3.36 vendors
(its sdist, fetched from PyPI's simple index and checked by sha256), once per machine: the binary
is kept in the edgecomplete home (tools/), so only a new machine builds it (about ten minutes on
two cores). `python -m tests.servers.llama_server` builds it ahead (CI does).

The tests start it on loopback, on a free port, with the model they name, and stop it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

from edgecomplete import models

SDIST = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LLAMA_CPP_COMMIT = "0c1e57098"  # what 0.3.36 vendors (its CHANGELOG)
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
# Built for this CPU, as the Makefile builds llama-cpp-python: with edgecomplete's patch (ggml's AMX
# kernels mended, flash attention over a BF16 cache, a few rows' matrix products kept off the AMX
# tiles; the Makefile says why). The version in SDIST, its sha256 and the patch are the Makefile's:
# tests/api/test_packaging.py checks that they agree.
PATCH = Path(__file__).resolve().parents[2] / "patches" / "llama-cpp-python-0.3.36.patch"


def binary() -> Path:
    patch = hashlib.sha256(PATCH.read_bytes()).hexdigest()[:12]
    return models.home() / "tools" / f"llama-server-{LLAMA_CPP_COMMIT}-{patch}" / "llama-server"


def _sdist(folder: Path) -> Path:
    """The sdist from the package index, checked against its pinned sha256."""
    with urllib.request.urlopen(f"{INDEX}/llama-cpp-python/", timeout=60) as page:
        links = re.findall(r'href="([^"]*' + re.escape(SDIST) + r'[^"]*)"', page.read().decode())
    if not links:
        raise RuntimeError(f"{INDEX} lists no {SDIST}")
    url = urllib.request.urljoin(f"{INDEX}/llama-cpp-python/", links[0].split("#")[0])
    path = folder / SDIST
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=300) as response, open(path, "wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != SDIST_SHA256:
        raise RuntimeError(f"{url} has sha256 {digest.hexdigest()}, expected {SDIST_SHA256}")
    return path


def build(jobs: int = 0) -> Path:
    """llama-server, built unless it already is; its path."""
    target = binary()
    if target.is_file():
        return target
    beside = Path(sys.executable).parent / "cmake"  # the test extra's pinned cmake
    cmake = str(beside) if beside.exists() else shutil.which("cmake") or "cmake"
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as scratch:
        folder = Path(scratch)
        with tarfile.open(_sdist(folder)) as archive:
            members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name]
            archive.extractall(folder, members=members, filter="data")
        source = next(folder.glob("*/vendor/llama.cpp"))
        with open(PATCH, "rb") as patch:
            subprocess.run(["patch", "-s", "-p1", "-d", str(source.parents[1])], stdin=patch, check=True)
        build_dir = folder / "build"
        subprocess.run([cmake, "-S", str(source), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_TESTS=OFF",
                        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cmake, "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs or os.cpu_count() or 2)],
                       check=True, stdout=subprocess.DEVNULL)
        built = build_dir / "bin" / "llama-server"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copy2(built, partial)
        os.replace(partial, target)  # whole, or not there
    return target


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(model: Path, *options: str) -> Iterator[str]:
    """llama-server with `model` on a free loopback port, once it answers /health: its URL."""
    port = free_port()
    command: List[str] = [str(build()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), *options]
    log = tempfile.TemporaryFile()  # its log (a pipe nobody reads would fill and stall it)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama-server exited: {log.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("llama-server did not answer within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


if __name__ == "__main__":
    print(build())
