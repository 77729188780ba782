"""``MountInterface``: the verbs :class:`~mountkit.mounter.Mounter` and
:class:`~mountkit.fake.FakeMounter` both offer, for type hints (mount-utils' ``Interface``).

Each implementation checks itself against it where it is defined (``_conforms``), so mypy fails on a
verb that drifts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: the protocol imports without the compiled extension
    from collections.abc import Iterable

    from mountkit._types import PathArg
    from mountkit.nfs import NfsSource
    from mountkit.table import MountTable


class MountInterface(Protocol):
    """What :class:`Mounter` and :class:`~mountkit.fake.FakeMounter` both offer, for type hints."""

    def mount(
        self,
        source: str | NfsSource,
        target: PathArg,
        fstype: str,
        options: Iterable[str] | str = (),
        sensitive_options: Iterable[str] = (),
        *,
        beneath: PathArg | None = None,
    ) -> None: ...
    def bind(
        self,
        source: PathArg,
        target: PathArg,
        *,
        readonly: bool = False,
        recursive: bool = False,
        options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None: ...
    def rbind(
        self,
        source: PathArg,
        target: PathArg,
        *,
        readonly: bool = False,
        options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None: ...
    def move(self, source: PathArg, target: PathArg) -> None: ...
    def remount(self, target: PathArg, options: Iterable[str] | str) -> None: ...
    def make_private(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def make_shared(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def make_slave(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def make_unbindable(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def unmount(
        self,
        target: PathArg,
        *,
        lazy: bool = False,
        force: bool = False,
        recursive: bool = False,
        timeout: float | None = None,
    ) -> None: ...
    def cleanup_mountpoint(
        self,
        path: PathArg,
        *,
        lazy: bool = False,
        force: bool = False,
        timeout: float | None = None,
        beneath: PathArg | None = None,
    ) -> None: ...
    def is_mountpoint(self, path: PathArg) -> bool: ...
    def check(self, path: PathArg) -> None: ...
    def is_live_mountpoint(self, path: PathArg) -> bool: ...
    def refs(self, path: PathArg) -> list[str]: ...
    def list(self) -> MountTable: ...
