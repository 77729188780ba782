"""Builds ``mountkit._mountkit_sys``, the cffi (API mode) module: cext/sys/*.c and cext/common/*.c.

Every header of cext/sys/ and cext/common/ is both the C declaration (included by the module) and
the cffi ``cdef`` (its preprocessor lines dropped), so a declaration is written once.  The other
compiled module, ``mountkit._mountkit_table`` (cext/table/, the CPython API), is built by setup.py's
``ext_modules``; cext/common/ (the compact mountinfo table) is compiled into both.
"""

from __future__ import annotations

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
DIRS = (HERE / "sys", HERE / "common")
#: sorted by file name, as one folder was: a header's cdef may use a type of one sorted before it
HEADERS = sorted((h for d in DIRS for h in d.glob("*.h")), key=lambda h: h.name)
SOURCES = sorted(s for d in DIRS for s in d.glob("*.c"))


def cdef_of(header: pathlib.Path) -> str:
    """The header's declarations without preprocessor lines (continued ones too), which cdef rejects."""
    text = header.read_text().replace("\\\n", " ")
    return "\n".join(line for line in text.splitlines() if not re.match(r"\s*#", line))


ffibuilder = FFI()
for _header in HEADERS:
    ffibuilder.cdef(cdef_of(_header))
ffibuilder.set_source(
    "mountkit._mountkit_sys",
    "\n".join(f'#include "{h.name}"' for h in HEADERS),
    sources=[str(s.relative_to(HERE.parent)) for s in SOURCES],
    include_dirs=[str(d) for d in DIRS],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
