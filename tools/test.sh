#!/usr/bin/env bash
# Installs everything the tests need (Debian, as root) and runs the whole suite in one pytest
# session: unit tests, privileged tests in private mount namespaces, and the real-NFS suite in the
# qemu test guest. Extra arguments go to pytest (e.g. tools/test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/setup-env.sh
mk_install test
args=("$@")
((${#args[@]})) || args=(tests)
set +e
python -m pytest "${args[@]}"
rc=$?
set -e
# pytest's 5 means "no tests collected": for CI that is a failure, not a pass.
exit "$rc"
