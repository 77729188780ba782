"""Type aliases the whole package shares, in a module that imports nothing of mountkit.

Written once here so that the gateway to the C code (:mod:`mountkit._c`), the table and the pure
rules can all name them without importing one another.
"""

from __future__ import annotations

import os
from typing import TypeAlias

#: a path as callers give it: what :func:`os.fsencode` and :func:`os.fsdecode` take
PathArg: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]
