#!/usr/bin/env bash
# Installs mountkit and the Filestore CSI driver (Debian, as root) and runs the demo: the driver on
# its embedded Filestore emulator, and a client that walks one volume through its whole lifecycle.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/setup-env.sh
mk_install
exec filestore-csi-driver demo "$@"
