# Sourced by tools/demo.sh, tools/test.sh and tools/image.sh: installs what mountkit needs on
# Debian, as root, into a virtual environment at .venv (Debian's Python refuses system-wide pip
# installs).
# Only what is missing is installed, so a second run costs seconds.

mk_need_apt() {  # mk_need_apt CMD-OR-PATH PACKAGE...: queue packages whose marker is missing
    local marker=$1; shift
    if [[ $marker == /* ]]; then [[ -e $marker ]] && return 0
    else command -v "$marker" >/dev/null 2>&1 && return 0; fi
    MK_APT+=("$@")
}

mk_apt() {  # installs the packages mk_need_apt queued in MK_APT, if any
    if ((${#MK_APT[@]})); then
        echo "== apt-get install ${MK_APT[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${MK_APT[@]}" >/dev/null
    fi
}

mk_install() {  # mk_install [test]: system packages, then the venv with both distributions (and the dev lock)
    local extras=${1:-}
    MK_APT=()
    mk_need_apt python3 python3
    mk_need_apt gcc gcc libc6-dev
    mk_need_apt unshare util-linux
    mk_need_apt findmnt util-linux
    python3 -c 'import venv, ensurepip' 2>/dev/null || MK_APT+=(python3-venv)
    python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null \
        || MK_APT+=(python3-dev)
    [[ -e /usr/include/ffi.h || -e /usr/include/x86_64-linux-gnu/ffi.h ]] || MK_APT+=(libffi-dev)
    if [[ $extras == test ]]; then
        mk_need_apt mkfs.ext4 e2fsprogs
        mk_need_apt losetup mount
        mk_need_apt fusermount3 fuse3
        mk_need_apt /usr/lib/x86_64-linux-gnu/libfuse.so.2 libfuse2
        # The NFS test guest (tests/vm): qemu, Debian's kernel (nfs/nfsd modules), the NFS server.
        mk_need_apt qemu-system-x86_64 qemu-system-x86
        compgen -G "/boot/vmlinuz-*" >/dev/null || MK_APT+=(linux-image-amd64)
        mk_need_apt /usr/sbin/rpc.nfsd nfs-kernel-server
        mk_need_apt /bin/busybox busybox-static
        mk_need_apt cpio cpio
        mk_need_apt modprobe kmod
        # a real Kubernetes API server for the lock-release tests (tests/support/kubeapi.py): etcd, and openssl for its certificates
        mk_need_apt etcd etcd-server
        mk_need_apt openssl openssl
    fi
    mk_apt
    if [[ ! -x .venv/bin/python ]]; then
        echo "== python3 -m venv .venv"
        python3 -m venv .venv
    fi
    # Exactly what CI tested: every package from the hashed locks in requirements/ (tools/lock.sh
    # refreshes them), then this repository's two distributions on top, built with the locked
    # setuptools and cffi rather than whatever an isolated build would fetch.
    local lock=driver
    [[ $extras == test ]] && lock=dev
    echo "== pip install -r requirements/$lock.txt, then -e . -e ./driver"
    mk_pip --require-hashes -r requirements/build.txt -r "requirements/$lock.txt"
    mk_pip --no-deps --no-build-isolation -e . -e ./driver
    export PATH="$PWD/.venv/bin:$PATH"
}

mk_pip() {  # pip install into .venv, quietly
    .venv/bin/python -m pip install -q --disable-pip-version-check "$@"
}
