#!/usr/bin/env bash
# Builds the driver image from Dockerfile with Debian's podman and runs it (Debian, as root):
#   bash tools/image.sh [all]     # base, build, help, demo, test, each step timed
#   bash tools/image.sh base      # the Debian base image (mmdebstrap of bookworm + python3), cached
#   bash tools/image.sh build     # the driver image and its `test` target (layers cached)
#   bash tools/image.sh help      # podman run IMAGE --help
#   bash tools/image.sh demo      # podman run --privileged IMAGE demo (its own private namespace)
#   bash tools/image.sh test [PYTEST-ARGS]  # tests/privileged in a --privileged test container
#   bash tools/image.sh clean     # removes every image and container of this script's storage
# No container registry is needed: the base image is made from Debian packages and passed as
# PYTHON_IMAGE; the build reaches only deb.debian.org and PyPI.  All of podman's state lives under
# $MOUNTKIT_IMAGE_STATE (default /var/lib/mountkit-image) and /run/mountkit-image.
set -euo pipefail
cd "$(dirname "$0")/.."
# podman mounts each container's layers (overlay, shm) while it runs: in a mount namespace of this
# script's own none of that reaches the host's mount table, and all of it goes when the script ends.
if [[ $(readlink /proc/self/ns/mnt) == $(readlink /proc/$PPID/ns/mnt) ]]; then
    [[ -z ${MOUNTKIT_IMAGE_NS-} ]] || { echo "image.sh: unshare left the mount namespace shared" >&2; exit 1; }
    MOUNTKIT_IMAGE_NS=1 exec unshare --mount --propagation private -- bash tools/image.sh "$@"
fi

STATE=${MOUNTKIT_IMAGE_STATE:-/var/lib/mountkit-image}
SUITE=${MOUNTKIT_IMAGE_SUITE:-bookworm}
MIRROR=${MOUNTKIT_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${MOUNTKIT_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE=localhost/mountkit-base:$SUITE
IMAGE=${MOUNTKIT_IMAGE:-localhost/mountkit/filestore-csi-driver:dev}
TEST_IMAGE=$IMAGE-test

# runc, not crun: crun refuses a hybrid cgroup v1/v2 host ("cgroups in hybrid mode not supported").
# cgroupfs: there is no systemd to manage cgroups.  overlay storage works as root; set
# MOUNTKIT_IMAGE_STORAGE_DRIVER=vfs where the kernel refuses overlay on the host's filesystem.
PODMAN=(podman --root "$STATE/storage" --runroot "/run/mountkit-image"
    --storage-driver "${MOUNTKIT_IMAGE_STORAGE_DRIVER:-overlay}"
    --cgroup-manager cgroupfs --runtime runc --events-backend file)
# podman's default rlimits (nofile 1048576) exceed this host's hard limits and raising them needs
# CAP_SYS_RESOURCE; podman also lowers its own nproc to 32768 before starting the runtime, so a
# container may not ask for more.  Use what the host allows.
nproc=$(ulimit -Hu); [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
# Containers get a network namespace of their own with loopback only; the build needs PyPI.
RUN=(run --rm --network none "${ULIMITS[@]}")

need_tools() {
    . tools/setup-env.sh
    MK_APT=()
    mk_need_apt podman podman
    mk_need_apt runc runc
    mk_need_apt mmdebstrap mmdebstrap
    mk_apt
}

timed() {  # timed NAME CMD...: runs CMD, then prints how long it took
    local start=$SECONDS
    echo "== $1"
    "${@:2}"
    echo "== $1: $((SECONDS - start)) s"
}

base() {  # Debian's python3 from packages; the host's CA bundle, so pip trusts what the host does
    "${PODMAN[@]}" image exists "$BASE" && return 0
    mkdir -p "$STATE"
    local tar="$STATE/base-$SUITE.tar" hooks=()
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] \
        && hooks=(--customize-hook="upload /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt")
    mmdebstrap --variant=apt --include=python3,python3-venv "${hooks[@]}" "$SUITE" "$tar" \
        "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
        "deb $SECURITY_MIRROR $SUITE-security main"
    "${PODMAN[@]}" import --change 'CMD ["python3"]' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' "$tar" "$BASE"
    rm -f "$tar"
}

build() {
    base
    local args=(build "${ULIMITS[@]}" --network host --build-arg "PYTHON_IMAGE=$BASE")
    "${PODMAN[@]}" "${args[@]}" -t "$IMAGE" .
    "${PODMAN[@]}" "${args[@]}" --target test -t "$TEST_IMAGE" .
}

help() { "${PODMAN[@]}" "${RUN[@]}" "$IMAGE" --help; }

demo() { "${PODMAN[@]}" "${RUN[@]}" --privileged "$IMAGE" demo; }

test_() { "${PODMAN[@]}" "${RUN[@]}" --privileged "$TEST_IMAGE" tests/privileged "$@"; }

clean() {
    "${PODMAN[@]}" rm --all --force
    "${PODMAN[@]}" rmi --all --force
}

need_tools
cmd=${1:-all}
(($#)) && shift
case $cmd in
    all) timed base base; timed build build; timed help help; timed demo demo; timed test test_ "$@" ;;
    base | build | help | demo | clean) timed "$cmd" "$cmd" ;;
    test) timed test test_ "$@" ;;
    *) echo "usage: $0 [all|base|build|help|demo|test [PYTEST-ARGS]|clean]" >&2; exit 2 ;;
esac
