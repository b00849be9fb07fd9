"""Packaging: the wheel carries every package of the source tree (an editable install would hide
a gap), and llama.cpp is built one way, from one pinned version, wherever it is built."""

import platform
import re
import tomllib
from pathlib import Path


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


def test_llama_cpp_has_ggml_amx_kernels_exactly_where_the_cpu_has_amx():
    """The Makefile builds llama-cpp-python for this CPU (-march=native), with the patch that
    mends ggml's AMX kernels rather than without them: its feature list names AMX where the CPU
    has it (the build machine from 2026-12-06: an AMX Xeon), and edgecomplete then repacks by
    default, so that its weights go through them (tests/cli: a completion runs there)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "CPU :" in info, info  # the CPU backend's feature list is there to read
    cpu_flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    if platform.machine().lower() in ("x86_64", "amd64") and cpu_flags:
        has_amx = {"amx_tile", "amx_int8", "avx512_vnni"} <= set(cpu_flags)
        assert ("AMX_INT8 = 1" in info) == has_amx, info


def test_llama_cpp_python_pin_and_build_flags_agree_everywhere():
    """llama-cpp-python's version is pinned in pyproject (the package and its server extra), in
    the Makefile (the wheel it builds) and in tests/servers/llama_server.py (the sdist whose
    vendored llama.cpp llama-server is built from); the sdist's sha256 and the AMX patch are
    named in the Makefile and in llama_server.py (one is make, the other Python): a bump or a
    patch changed in one place only would build or test another llama.cpp than the engine runs."""
    import llama_cpp

    from tests.servers import llama_server

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [r for r in pyproject["dependencies"] + sum(pyproject["optional-dependencies"].values(), [])
            if r.startswith("llama-cpp-python")]
    makefile = (ROOT / "Makefile").read_text()
    make_pin = re.search(r"^LLAMA_CPP_PYTHON := llama-cpp-python==(\S+)$", makefile, re.M)
    make_sha = re.search(r"^SDIST_SHA256 := ([0-9a-f]{64})$", makefile, re.M)
    make_patch = re.search(r"^PATCH := (\S+)$", makefile, re.M)
    assert make_pin and make_sha and make_patch, "the Makefile's LLAMA_CPP_PYTHON, SDIST_SHA256 or PATCH line changed shape"
    version = make_pin.group(1)
    assert pins and {re.sub(r"^llama-cpp-python(\[\w+\])?==", "", p) for p in pins} == {version}, pins
    assert llama_server.SDIST == f"llama_cpp_python-{version}.tar.gz"
    assert llama_cpp.__version__ == version  # what this environment installed
    assert llama_server.SDIST_SHA256 == make_sha.group(1)
    assert llama_server.PATCH == ROOT / make_patch.group(1) and llama_server.PATCH.is_file()
    assert f"llama-cpp-python-{version}" in llama_server.PATCH.name  # written for this version
