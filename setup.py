"""The compiled parts of mountkit; its metadata is PEP 621, in pyproject.toml.

Two extension modules: ``mountkit._mountkit_sys`` (cffi, API mode: cext/build_sys.py) and
``mountkit._mountkit_table`` (the table's reader written against the CPython API, cext/table/:
cext/table/capi.h says why); cext/common/ is compiled into both. The latter uses CPython internals
outside the limited API (member descriptors, ``_PyBytes_Resize``), so wheels are built per Python
version rather than abi3.
"""

from glob import glob

from setuptools import Extension, setup

setup(
    cffi_modules=["cext/build_sys.py:ffibuilder"],
    ext_modules=[
        Extension(
            "mountkit._mountkit_table",
            [*sorted(glob("cext/table/*.c")), *sorted(glob("cext/common/*.c"))],
            include_dirs=["cext/common", "cext/table"],
            depends=[*sorted(glob("cext/common/*.h")), "cext/table/capi.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)
