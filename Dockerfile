# The Filestore CSI driver image.  The driver mounts through direct syscalls (mountkit's cffi
# extension), so the runtime image needs no mount helpers (no nfs-common, no /sbin/mount.nfs):
# only Python and the installed wheel.  The compiler lives in the build stage alone.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libffi-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.py pyproject.toml ./
COPY cext/ cext/
COPY mountkit/ mountkit/
COPY csi/ csi/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENTRYPOINT ["filestore-csi-driver"]
