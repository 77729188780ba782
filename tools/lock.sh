#!/usr/bin/env bash
# Refreshes the hashed lock files under requirements/ from their .in files (and the two
# pyproject.toml files they name), with the uv pinned in requirements/dev.txt. Run it after changing
# a dependency, or to take upstream releases: `bash tools/lock.sh` (extra arguments go to every
# `uv pip compile`, e.g. --upgrade-package grpcio-tools). Commit the .txt files it writes.
# uv, not pip-tools: it resolves all three files in seconds, writes universal locks (markers, not
# this machine's Python) with the hashes of every published file, and is one static binary.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/setup-env.sh
mk_install test
compile() {  # compile NAME [ARGS]: requirements/NAME.in -> requirements/NAME.txt
    local name=$1; shift
    uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
        --no-emit-package mountkit --no-emit-package filestore-csi-driver \
        --custom-compile-command "bash tools/lock.sh" \
        "requirements/$name.in" -o "requirements/$name.txt" "$@"
}
compile build "$@"
compile driver "$@"
compile dev "$@"
echo "requirements/*.txt refreshed: review with git diff, then run bash tools/test.sh"
