"""cffi build script (API mode) for the C core: edgecomplete._native.

setuptools runs it through `cffi_modules` in setup.py; the C API is whatever
csrc/edgecomplete.h declares.
"""

import os
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


# EDGECOMPLETE_SANITIZE=1 builds it with AddressSanitizer and UndefinedBehaviorSanitizer (any
# report aborts), for `make sanitize`; a normal build is optimised.
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]
SANITIZED = os.environ.get("EDGECOMPLETE_SANITIZE") == "1"

ffibuilder = FFI()
ffibuilder.cdef(header_declarations())
ffibuilder.set_source(
    "edgecomplete._native",
    '#include "edgecomplete.h"',
    # setuptools wants source paths relative to the project root.
    # Relative for setuptools; absolute when run as a script (cffi compiles in its own folder).
    sources=[str(CSRC / name) if __name__ == "__main__" else f"csrc/{name}" for name in SOURCES],
    include_dirs=[str(CSRC) if __name__ == "__main__" else "csrc"],
    extra_compile_args=[*(SANITIZE if SANITIZED else ["-O3"]), "-std=c11", "-ffp-contract=off", "-fno-trapping-math",
                        "-Wall", "-Wextra", "-Wno-unused-parameter"],
    extra_link_args=SANITIZE if SANITIZED else [],
    libraries=["m"],
)

if __name__ == "__main__":  # `python csrc/build_ffi.py [FOLDER]`, from the repository's root
    import sys

    ffibuilder.compile(tmpdir=sys.argv[1] if len(sys.argv) > 1 else ".", verbose=True)
