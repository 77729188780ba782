"""mountkit's gateway to its C code: one module per C unit, and the only importers of the compiled modules
``mountkit._mountkit_sys`` (cffi) and ``mountkit._mountkit_table`` (CPython API).

Each turns ``-1/errno`` into :class:`~mountkit.errors.MountError` with the operation and the path,
converts paths to bytes, and keeps pointers and raw errnos to itself (:mod:`mountkit._c.core`).
:mod:`mountkit._sys` gathers the names the rest of the package uses.
"""
