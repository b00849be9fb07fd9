"""The wheel carries every package of the source tree (an editable install would hide a gap)."""

import platform
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
