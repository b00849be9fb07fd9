"""Packaging: the wheel carries every package of the source tree (an editable install would hide
a gap), and llama.cpp is built one way, from one pinned version, wherever it is built."""

import platform
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_source_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = config.get("package-dir", {})
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("edgecomplete", "tui")
        for init in (ROOT / top).rglob("__init__.py")
    }
    on_disk |= set(mapped)
    assert on_disk == listed
    assert (ROOT / mapped["edgecomplete.manifests"] / "smollm2-135m.toml").is_file()


def test_llama_cpp_is_built_without_ggml_amx_kernels_on_x86():
    """In the llama.cpp that llama-cpp-python 0.3.36 vendors, ggml's AMX kernels crash the
    process on CPUs with AMX (SIGILL at the first tile instruction, wherever weights are
    repacked), so the Makefile builds it without them on x86 (NO_AMX). The feature list names
    what was compiled in; -march=native compiles AMX in only on a CPU that has it, so this can
    fail only there (the build machine from 2026-12-06: an AMX Xeon)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("AMX is x86 only")
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "CPU :" in info, info  # the CPU backend's feature list is there to read
    assert "AMX_INT8 = 1" not in info, info


def test_llama_cpp_python_pin_and_build_flags_agree_everywhere():
    """llama-cpp-python's version is pinned in pyproject (the package and its server extra), in
    the Makefile (the wheel it builds) and in tests/servers/llama_server.py (the sdist whose
    vendored llama.cpp llama-server is built from), and the AMX flags are written in the Makefile
    and in llama_server.py (one is make, the other Python): a bump or a flag changed in one
    place only would build or test another llama.cpp than the engine runs."""
    import llama_cpp

    from tests.servers import llama_server

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [r for r in pyproject["dependencies"] + sum(pyproject["optional-dependencies"].values(), [])
            if r.startswith("llama-cpp-python")]
    makefile = (ROOT / "Makefile").read_text()
    make_pin = re.search(r"^LLAMA_CPP_PYTHON := llama-cpp-python==(\S+)$", makefile, re.M)
    make_flags = re.search(r"^NO_AMX := \$\(if .*\),([^,()]+)\)$", makefile, re.M)  # $(if <x86>,<flags>)
    assert make_pin and make_flags, "the Makefile's LLAMA_CPP_PYTHON or NO_AMX line changed shape"
    version = make_pin.group(1)
    assert pins and {re.sub(r"^llama-cpp-python(\[\w+\])?==", "", p) for p in pins} == {version}, pins
    assert llama_server.SDIST == f"llama_cpp_python-{version}.tar.gz"
    assert llama_cpp.__version__ == version  # what this environment installed
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert llama_server.NO_AMX == make_flags.group(1).strip()
