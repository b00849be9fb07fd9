"""cffi build script (API mode) for the C core: edgecomplete._native.

setuptools runs it through `cffi_modules` in setup.py; the C API is whatever
csrc/edgecomplete.h declares.
"""

import re
from pathlib import Path

from cffi import FFI

CSRC = Path(__file__).resolve().parent
SOURCES = ["vocab.c", "sampling.c", "stop.c", "logprob.c", "constrain.c", "rank.c", "sequence.c"]


def header_declarations() -> str:
    """The header without its preprocessor lines, except integer #defines (cdef keeps those)."""
    keep = []
    for line in (CSRC / "edgecomplete.h").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not re.fullmatch(r"#define \w+ -?\d+", stripped):
            continue
        keep.append(line)
    return "\n".join(keep)


ffibuilder = FFI()
ffibuilder.cdef(header_declarations())
ffibuilder.set_source(
    "edgecomplete._native",
    '#include "edgecomplete.h"',
    # setuptools wants source paths relative to the project root.
    sources=[f"csrc/{name}" for name in SOURCES],
    include_dirs=["csrc"],
    extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-trapping-math", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
