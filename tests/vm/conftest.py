"""tests/vm/guest holds the suite that runs inside the NFS test guest; the host only launches it."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("NFSGUEST") else ["guest/*"]
