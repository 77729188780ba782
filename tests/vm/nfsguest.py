"""The NFS test guest: Debian's kernel under qemu, serving NFS on its loopback, running one command.

The development kernel has no NFS client, so real-NFS tests run in a small virtual machine that
boots the distribution kernel (which has nfs, nfsd, sunrpc and 9p as modules). The host's ``/`` is
shared read-only over 9p with tmpfs overlays for writes; the working tree is shared read-write, so
the guest runs the very code under test and can leave files for the host. The guest has no network
device, only ``lo``. Inside, the kernel NFS server exports a tmpfs at ``/srv/nfs`` to 127.0.0.1
(v3, v4.0, v4.1, v4.2). Without KVM that runs a stock kernel (here /dev/kvm is a nested PVM), qemu
emulates the CPU: about 5 s to boot and a guest CPU about 12x slower, so a caller runs one whole
pytest session per guest.

    python tests/vm/nfsguest.py -- python -m pytest tests/vm/guest    # from the project root
"""

from __future__ import annotations

import lzma
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: apt packages the guest needs on the host, keyed by what shows they are installed.
PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "rpc.nfsd": "nfs-kernel-server",
    "rpc.statd": "nfs-common",
    "rpcbind": "rpcbind",
    "modprobe": "kmod",
    "cpio": "cpio",
}
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console")


@dataclass(frozen=True)
class GuestResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class GuestUnavailable(RuntimeError):
    """The host cannot run the guest; the message says what is missing and how to install it."""


def _tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def kernel_version() -> str | None:
    """The newest installed kernel that has both an image and its modules."""
    mods = Path("/lib/modules")
    found = (
        [
            v.name
            for v in mods.iterdir()
            if (v / "modules.dep").exists() and Path(f"/boot/vmlinuz-{v.name}").exists()
        ]
        if mods.is_dir()
        else []
    )
    if not found:
        return None
    return max(found, key=lambda v: [int(x) if x.isdigit() else x for x in v.replace("-", ".").split(".")])


def missing_packages() -> list[str]:
    missing = sorted({pkg for tool, pkg in PACKAGES.items() if _tool(tool) is None})
    busybox = Path("/bin/busybox")
    if (
        not busybox.exists()
        or subprocess.run(["ldd", str(busybox)], check=False, capture_output=True).returncode == 0
    ):
        missing.append("busybox-static")
    if kernel_version() is None:
        missing.append("linux-image-amd64")
    return missing


def check_available() -> None:
    """Raise GuestUnavailable naming the apt packages to install, if any is missing."""
    missing = missing_packages()
    if missing:
        raise GuestUnavailable(
            "the NFS test guest needs: apt-get install --no-install-recommends " + " ".join(missing)
        )


def _vmlinux(kver: str) -> Path:
    """The uncompressed kernel, extracted once: booting it skips ~2.5 s of emulated xz decompression."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mountkit-nfsguest"
    out = cache / f"vmlinux-{kver}"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        packed = Path(f"/boot/vmlinuz-{kver}").read_bytes()
        elf = lzma.LZMADecompressor().decompress(packed[packed.index(b"\xfd7zXZ\0") :])
        if elf[:4] != b"\x7fELF":
            raise GuestUnavailable(f"/boot/vmlinuz-{kver} does not hold an xz-packed ELF kernel")
        tmp = out.with_suffix(f".{os.getpid()}")
        tmp.write_bytes(elf)
        tmp.rename(out)
    return out


def _initramfs(kver: str, scratch: Path) -> Path:
    root = scratch / "initramfs"
    for d in ("bin", "dev", "proc", "lower", "rw", "newroot", "mods"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    deps = subprocess.run(
        ["modprobe", "-S", kver, "--show-depends", "-a", *INITRAMFS_MODULES],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    order: list[str] = []
    for line in deps.splitlines():
        parts = line.split()
        if parts and parts[0] == "insmod" and parts[1] not in order:
            order.append(parts[1])
    for mod in order:
        shutil.copy2(mod, root / "mods")
    (root / "mods/order").write_text("\n".join(order) + "\n")
    shutil.copy2(HERE / "initramfs-init.sh", root / "init")
    (root / "init").chmod(0o755)
    image = scratch / "initrd"
    files = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
    with image.open("wb") as out:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files, stdout=out, check=True)
    return image


def _command_script(argv: list[str], cwd: str) -> str:
    env = "".join(
        f"export {k}={shlex.quote(v)}\n"
        for k, v in os.environ.items()
        if k.isidentifier() and k not in {"PWD", "OLDPWD", "SHLVL", "_"}
    )
    return (
        f"{env}export NFSGUEST=1 NFSGUEST_SERVER=127.0.0.1 NFSGUEST_EXPORT=/srv/nfs\n"
        f"cd {shlex.quote(cwd)} || exit 126\nexec {shlex.join(argv)}\n"
    )


def run(
    argv: list[str],
    *,
    cwd: str | None = None,
    mem_mb: int = 1024,
    cpus: int = 2,
    timeout: float = 900.0,
    boot_timeout: float = 180.0,
    echo: bool = False,
) -> GuestResult:
    """Boot the guest, run ``argv`` as root in ``cwd`` (shared read-write), return its result.

    ``echo`` streams the guest's output to ours as it comes. A guest that does not reach the
    command within ``boot_timeout`` or does not finish within ``timeout`` is killed (its qemu,
    which this function started) and the result carries return code 125 and the console tail.
    """
    check_available()
    kver = kernel_version()
    assert kver is not None
    cwd = os.path.abspath(cwd or os.getcwd())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mountkit-nfsguest-") as tmp:
        scratch = Path(tmp)
        initrd = _initramfs(kver, scratch)
        (scratch / "cwd").write_text(cwd)
        # The guest reaches the scratch dir at /run/nfsguest before anything else of the host's
        # that it can see read-write (the tree may live under /tmp, which the guest replaces).
        shutil.copy2(HERE / "guest-init.sh", scratch / "guest-init.sh")
        (scratch / "init").write_text("/run/nfsguest/guest-init.sh")
        (scratch / "cmd.sh").write_text(_command_script(argv, cwd))
        out_path, err_path, console = scratch / "out", scratch / "err", scratch / "console.log"
        accel = os.environ.get("NFSGUEST_ACCEL") or (
            "kvm" if os.access("/dev/kvm", os.W_OK) and not Path("/sys/module/kvm_pvm").exists() else "tcg"
        )
        fsdev: list[str] = []
        for tag, path, opts in (
            ("hostroot", "/", "security_model=none,readonly=on,multidevs=remap"),
            ("cwd", cwd, "security_model=passthrough,multidevs=remap"),
            ("ctl", str(scratch), "security_model=passthrough"),
        ):
            fsdev += [
                "-fsdev",
                f"local,id={tag},path={path.replace(',', ',,')},{opts}",
                "-device",
                f"virtio-9p-pci,fsdev={tag},mount_tag={tag}",
            ]
        qemu = [
            "qemu-system-x86_64",
            "-M",
            "q35",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-accel",
            accel,
            "-cpu",
            "host" if accel == "kvm" else "max",
            "-m",
            str(mem_mb),
            "-smp",
            str(cpus),
            "-kernel",
            str(_vmlinux(kver)),
            "-initrd",
            str(initrd),
            "-append",
            "console=ttyS0 quiet panic=-1",
            "-serial",
            f"file:{console}",
            *fsdev,
            "-device",
            "virtio-serial-pci",
            "-chardev",
            f"file,id=out,path={out_path}",
            "-device",
            "virtserialport,chardev=out,name=out",
            "-chardev",
            f"file,id=err,path={err_path}",
            "-device",
            "virtserialport,chardev=err,name=err",
        ]
        proc = subprocess.Popen(
            qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        stop = threading.Event()
        streamer = threading.Thread(target=_echo, args=(out_path, stop), daemon=True) if echo else None
        if streamer:
            streamer.start()
        reason = _supervise(proc, scratch / "started", boot_timeout, timeout)
        stop.set()
        if streamer:
            streamer.join()
        qemu_out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        stdout = out_path.read_text(errors="replace") if out_path.exists() else ""
        stderr = err_path.read_text(errors="replace") if err_path.exists() else ""
        rc_file = scratch / "rc"
        if reason is None and rc_file.exists() and rc_file.read_text().strip():
            rc = int(rc_file.read_text())
        else:
            tail = console.read_text(errors="replace").splitlines()[-40:] if console.exists() else []
            stderr += (
                f"\nnfsguest: {reason or 'the guest reported no exit status'} (qemu rc={proc.returncode})\n"
                + qemu_out
                + "\n".join(tail)
                + "\n"
            )
            rc = 125
    return GuestResult(rc, stdout, stderr, time.monotonic() - started)


def _supervise(
    proc: subprocess.Popen[bytes], started: Path, boot_timeout: float, timeout: float
) -> str | None:
    """Wait for qemu; kill it (our own child, by PID) when it does not boot or finish in time."""
    begin = time.monotonic()
    while proc.poll() is None:
        now = time.monotonic() - begin
        if not started.exists() and now > boot_timeout:
            proc.kill()
            proc.wait()
            return f"the guest did not boot within {boot_timeout:.0f} s"
        if now > timeout:
            proc.kill()
            proc.wait()
            return f"the guest command did not finish within {timeout:.0f} s"
        time.sleep(0.1)
    return None


def _echo(path: Path, stop: threading.Event) -> None:
    """Copy what the guest writes to ``path`` onto our stdout as it arrives."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.05)
    if not path.exists():
        return
    with path.open("rb") as src:
        while True:
            chunk = src.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            elif stop.is_set():
                return
            else:
                time.sleep(0.05)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: nfsguest.py [--mem MB] -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1 :]
    mem = int(opts[opts.index("--mem") + 1]) if "--mem" in opts else 1024
    try:
        result = run(command, mem_mb=mem, echo=True)
    except GuestUnavailable as exc:
        print(f"nfsguest: {exc}", file=sys.stderr)
        return 127
    sys.stderr.write(result.stderr)
    print(f"nfsguest: finished in {result.seconds:.1f} s, exit status {result.returncode}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
