"""cffi API-mode build of mountkit's one extension module, ``mountkit._mountkit_sys``.

Every ``cext/*.h`` header is both the C declaration (included by the module)
and the cffi ``cdef`` (its preprocessor lines dropped), so a declaration is
written once; every ``cext/*.c`` is compiled into the module (``cext/capi/`` holds the modules written
against the CPython API, built by setup.py's ``ext_modules``).
"""

from __future__ import annotations

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
HEADERS = sorted(HERE.glob("*.h"))
SOURCES = sorted(HERE.glob("*.c"))


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
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
