"""Builds mountkit (with its cffi extension) and the Filestore CSI driver."""

from glob import glob

from setuptools import Extension, find_packages, setup

setup(
    name="mountkit",
    version="0.1.0",
    description="A Linux mount engine over direct syscalls, and a Filestore CSI driver built on it",
    python_requires=">=3.11",
    packages=find_packages(include=["mountkit", "mountkit.*", "csi", "csi.*"]),
    package_data={"csi": ["proto/*.proto", "py.typed"], "mountkit": ["py.typed"]},
    setup_requires=["cffi>=1.17"],
    cffi_modules=["cext/build_sys.py:ffibuilder"],
    # not cffi: the table's C side written against the CPython API (cext/capi/capi.h says why)
    ext_modules=[
        Extension(
            "mountkit._mountkit_table",
            [*sorted(glob("cext/capi/*.c")), "cext/mountinfo.c"],
            include_dirs=["cext", "cext/capi"],
            depends=["cext/mountinfo.h", "cext/capi/capi.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
    install_requires=[
        "cffi>=1.17",
        "pyroute2>=0.7.3",
        "grpcio>=1.85.1",
        "protobuf>=7.35.1",
        "google-cloud-filestore>=1.13",
        "google-api-core[grpc]>=2.17",
        "googleapis-common-protos>=1.62",
        "google-auth>=2.22",
        "requests>=2.31",
        "prometheus-client>=0.19",
    ],
    extras_require={
        "test": [
            "pytest>=8.0",
            "hypothesis>=6.100",
            "psutil>=5.9",
            "grpcio-tools>=1.85.1",
            "pyyaml>=6.0",
            "matplotlib>=3.8",
            "fusepy>=3.0",
            "mypy>=1.10",
            "grpc-stubs>=1.53",
            "ruff>=0.5",
        ],
    },
    entry_points={
        "console_scripts": [
            "mountkit=mountkit.cli:main",
            "filestore-csi-driver=csi.main:main",
        ],
        "pytest11": ["mountkit=mountkit.testing"],
    },
)
