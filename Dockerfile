# The Filestore CSI driver image.  The driver mounts through direct syscalls (mountkit's cffi
# extension), so the runtime image needs no mount helpers (no /sbin/mount.nfs is ever called):
# only Python and a virtual environment holding the package, plus rpcbind and rpc.statd (nfs-common)
# for `filestore-csi-driver nsm`, the DaemonSet's nfs-services container: NFSv3 locks survive a
# server restart only with a statd on the node (docs/nfsv3-locking.md).  The compiler lives in the build
# stage alone.  PYTHON_IMAGE is any Debian-based image with python3 >= 3.11 (the official
# python:3.11-slim-bookworm, or Debian's own python3 as tools/image.sh builds it with mmdebstrap);
# both stages start from it, so the venv's interpreter path is the same in each.
# Targets: the default (last) stage is the driver; `--target test` adds the privileged test
# suite and what it needs (mount, losetup, mkfs.ext4, FUSE) for tools/image.sh test.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Python.h and ensurepip come with the official python images; Debian's python3 needs them added.
RUN pkgs="gcc libc6-dev libffi-dev" \
    && { python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
         || pkgs="$pkgs python3-dev"; } \
    && { python3 -c 'import ensurepip' 2>/dev/null || pkgs="$pkgs python3-venv"; } \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements/ requirements/
COPY setup.py pyproject.toml MANIFEST.in README.md LICENSE CHANGELOG.md ./
COPY cext/ cext/
COPY mountkit/ mountkit/
COPY csi/ csi/
COPY driver/ driver/
# Debian's python3 refuses system-wide pip installs (PEP 668): the wheels are built in /opt/build
# with the locked setuptools and cffi, and the driver runs from /opt/venv, which holds exactly
# requirements/driver.txt (hashes checked) and the two wheels of this repository.
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements/build.txt \
    && /opt/build/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
       --wheel-dir /wheels . ./driver \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements/driver.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index /wheels/*.whl

FROM ${PYTHON_IMAGE} AS driver
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rpcbind nfs-common \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
ENTRYPOINT ["filestore-csi-driver"]

FROM driver AS test
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       mount e2fsprogs fuse3 libfuse2 \
    && rm -rf /var/lib/apt/lists/*
# The test tools come from the same lock as the development machines' (requirements/dev.txt).
COPY --from=build /src/requirements/ /tmp/requirements/
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /tmp/requirements/dev.txt \
    && rm -rf /tmp/requirements
WORKDIR /work
COPY pyproject.toml ./
COPY tests/ tests/
ENTRYPOINT ["python", "-m", "pytest"]
CMD ["tests/privileged"]

FROM driver
