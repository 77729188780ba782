#!/usr/bin/env bash
# Installs mountkit and the Filestore CSI driver (Debian, as root) and runs the demo: the driver on
# its embedded Filestore emulator, and a client that walks one volume through its whole lifecycle.
#   bash tools/demo.sh              # here (without an NFS client, staging uses a tmpfs stand-in)
#   bash tools/demo.sh --nfs-guest  # in the qemu NFS test guest: every instance a real NFS server
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/setup-env.sh
if [[ ${1-} == --nfs-guest ]]; then
    shift
    mk_install test
    exec python tests/vm/nfsguest.py -- "$PWD/.venv/bin/python" -m tests.vm.guest.demo "$@"
fi
mk_install
exec filestore-csi-driver demo "$@"
