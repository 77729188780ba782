"""The ``mountkit`` command: the engine's verbs from a shell.

Output is an aligned table for people and ``--json`` for scripts.  Exit
status as findmnt's: 0 done, 1 nothing found (``list`` with a filter that
matched no mount, ``refs`` with no other mount point, ``is-mountpoint`` "no"),
2 a failure, with one line on stderr.  A reader that goes away (``| head``)
ends the command quietly with 0, as findmnt does when SIGPIPE is ignored
(Python ignores it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

from mountkit._version import __version__
from mountkit.errors import MountError
from mountkit.interface import MountInterface
from mountkit.mounter import Mounter
from mountkit.table import MountInfo
from mountkit.watcher import EventKind, MountEvent, watch

_COLUMNS = ("TARGET", "SOURCE", "FSTYPE", "OPTIONS")
_PROPAGATION = ("private", "shared", "slave", "unbindable")
#: findmnt's exit statuses
EXIT_OK, EXIT_NOTHING, EXIT_FAILED = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mountkit",
        description="Mount, bind and inspect mounts (Linux).",
        epilog="exit status: 0 done, 1 nothing found (list, refs, is-mountpoint), 2 failed",
    )
    parser.add_argument("--version", action="version", version=f"mountkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    ls = verbs.add_parser("list", help="show the mount table (exit 1 when a filter matches nothing)")
    ls.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    ls.add_argument("-t", "--type", help="only filesystems of this type (comma-separated list)")
    ls.add_argument("--target", help="only the mount(s) at this path")
    ls.add_argument("--source", help="only mounts of this source")

    mount = verbs.add_parser("mount", help="mount a filesystem (idempotent)")
    mount.add_argument("source")
    mount.add_argument("target")
    mount.add_argument("-t", "--type", required=True, help="filesystem type, e.g. tmpfs, ext4, nfs")
    mount.add_argument("-o", "--options", default="", help="comma-separated mount options")

    bind = verbs.add_parser("bind", help="bind-mount a directory or file (idempotent)")
    bind.add_argument("source")
    bind.add_argument("target")
    bind.add_argument("--ro", action="store_true", help="read-only, never visible writable")
    bind.add_argument("--recursive", action="store_true", help="include the mounts below source")

    rbind = verbs.add_parser("rbind", help="bind-mount a directory with every mount below it (idempotent)")
    rbind.add_argument("source")
    rbind.add_argument("target")
    rbind.add_argument("--ro", action="store_true", help="read-only, never visible writable")

    remount = verbs.add_parser("remount", help="change the options of a mount (idempotent)")
    remount.add_argument("target")
    remount.add_argument(
        "-o", "--options", required=True, help="comma-separated mount options, e.g. ro,noexec"
    )

    move = verbs.add_parser("move", help="move a mount and the mounts below it (idempotent)")
    move.add_argument("source")
    move.add_argument("target")

    for kind in _PROPAGATION:
        make = verbs.add_parser(f"make-{kind}", help=f"make a mount {kind} (idempotent)")
        make.add_argument("path")
        make.add_argument("--recursive", action="store_true", help="every mount below it too")

    umount = verbs.add_parser(
        "umount", aliases=["unmount"], help="unmount everything at a path (success if nothing is)"
    )
    umount.add_argument("target")
    umount.add_argument("--lazy", action="store_true", help="detach now, clean up when no longer busy")
    umount.add_argument("--force", action="store_true", help="abort pending requests (NFS)")
    umount.add_argument("--recursive", action="store_true", help="unmount the mounts below it first")

    ismp = verbs.add_parser("is-mountpoint", help="exit 0 if the path is a mount point, else 1")
    ismp.add_argument("path")

    refs = verbs.add_parser("refs", help="other mount points of the same filesystem and root (exit 1: none)")
    refs.add_argument("path")

    watch = verbs.add_parser("watch", help="print mounts as they are attached, detached or changed")
    watch.add_argument("path", nargs="?", help="only mounts at or below this path")
    watch.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    watch.add_argument("--backend", choices=("auto", "fanotify", "poll"), default="auto")
    watch.add_argument("--count", type=int, help="exit after this many events")
    return parser


def _selected(entries: Sequence[MountInfo], args: argparse.Namespace) -> list[MountInfo]:
    types = set(args.type.split(",")) if args.type else None
    target = os.path.abspath(args.target) if args.target else None
    return [
        e
        for e in entries
        if (types is None or e.fs_type in types)
        and (target is None or e.mount_point == target)
        and (args.source is None or e.source == args.source)
    ]


def _table(entries: Sequence[MountInfo]) -> str:
    rows = [_COLUMNS, *((e.mount_point, e.source, e.fs_type, ",".join(e.options)) for e in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in rows
    )


def _json(entries: Sequence[MountInfo]) -> str:
    return json.dumps([{**dataclasses.asdict(e), "readonly": e.readonly} for e in entries], indent=2)


def _entry_json(e: MountInfo | None) -> dict[str, object] | None:
    return None if e is None else {**dataclasses.asdict(e), "readonly": e.readonly}


def _event_line(event: MountEvent, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "event": event.kind.value,
                "unique_id": event.unique_id,
                "mount": _entry_json(event.mount),
                "previous": _entry_json(event.previous),
            }
        )
    e = event.mount or event.previous
    what = (
        "(gone before it could be described)"
        if e is None
        else f"{e.mount_point} {e.source} {e.fs_type} {','.join(e.options)}"
    )
    was = event.previous
    if event.kind is EventKind.CHANGE and was is not None and e is not None and was != e:
        what += f" (was {was.mount_point} {','.join(was.options)})"
    return f"{event.kind.value:<6} {what}"


def _watch(args: argparse.Namespace) -> int:
    """Stream events until ``--count`` of them (or forever); the stderr line says when it is armed."""
    with watch(args.path, backend=args.backend) as watcher:
        print(
            f"mountkit: watching {args.path or 'the mount namespace'} ({watcher.backend})",
            file=sys.stderr,
            flush=True,
        )
        for n, event in enumerate(watcher, 1):
            print(_event_line(event, args.json), flush=True)
            if args.count is not None and n >= args.count:
                break
    return 0


def _run(args: argparse.Namespace, mounter: MountInterface) -> int:
    if args.verb == "watch":
        return _watch(args)
    if args.verb == "list":
        entries = _selected(mounter.list(), args)
        if entries or args.json:  # JSON stays parseable: [] when nothing matched
            print(_json(entries) if args.json else _table(entries))
        return EXIT_OK if entries else EXIT_NOTHING
    elif args.verb == "mount":
        mounter.mount(args.source, args.target, args.type, args.options)
    elif args.verb == "bind":
        mounter.bind(args.source, args.target, readonly=args.ro, recursive=args.recursive)
    elif args.verb == "rbind":
        mounter.rbind(args.source, args.target, readonly=args.ro)
    elif args.verb == "remount":
        mounter.remount(args.target, args.options)
    elif args.verb == "move":
        mounter.move(args.source, args.target)
    elif args.verb.startswith("make-"):
        getattr(mounter, args.verb.replace("-", "_"))(args.path, recursive=args.recursive)
    elif args.verb in ("umount", "unmount"):
        mounter.unmount(args.target, lazy=args.lazy, force=args.force, recursive=args.recursive)
    elif args.verb == "is-mountpoint":
        yes = mounter.is_mountpoint(args.path)
        print(f"{args.path} is {'' if yes else 'not '}a mount point")
        return EXIT_OK if yes else EXIT_NOTHING
    elif args.verb == "refs":
        found = mounter.refs(args.path)
        for path in found:
            print(path)
        return EXIT_OK if found else EXIT_NOTHING
    return EXIT_OK


def _reader_gone() -> int:
    """stdout's reader has closed the pipe: nothing more can be said, and that is not a failure.

    stdout is pointed at /dev/null so that the interpreter's final flush of what is still
    buffered does not fail again on the way out.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, mounter: MountInterface | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 nothing found, 2 error; see the module)."""
    try:
        args = _parser().parse_args(argv)  # --help and --version print here
        code = _run(args, mounter if mounter is not None else Mounter())
        sys.stdout.flush()  # a closed pipe shows here, while it can still be told apart
        return code
    except BrokenPipeError:  # only stdout's: an errno from the kernel's verbs comes as MountError
        return _reader_gone()
    except (MountError, OSError) as exc:
        print(f"mountkit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
