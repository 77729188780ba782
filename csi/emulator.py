"""``python -m csi.emulator``: the Filestore emulator (see :mod:`csi.cloud.emulator`)."""

import sys

from csi.cloud.emulator.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
