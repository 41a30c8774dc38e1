"""Files read once per version and written whole.

What a long-lived process reads from files is kept per version of the files. `boligdata serve` runs
flow after flow in one process and its watcher looks at the landing every second: each would otherwise
read every landed file and every reference file again each time.

A version is the file's device, inode, size and modification and change times in ns; no tool writes
a file without moving its change time, even one that puts the modification time back. A file changed
in the last RECENT_CHANGE_NS has no version yet and is read every time: writes within one tick of the
file system's clock share their times (a few ms on Linux, 2 s on FAT). Not covered: a network share
whose clock runs more than that behind this machine's, rewritten in place at the same size within one
of its ticks.

A file the pipeline rewrites (the status page, the watcher's state, a steward's reference edit) is
written beside itself and renamed over itself: a reader sees the last version or the next, never half."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from time import time_ns

RECENT_CHANGE_NS = 3_000_000_000


def file_version(path: Path | str) -> tuple[int, ...] | None:
    """The file's version, or None while it changed too recently to tell it from its next one."""
    status = os.stat(path)
    if time_ns() - status.st_ctime_ns < RECENT_CHANGE_NS:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def versions_of(paths: Iterable[Path]) -> tuple | None:
    """(name, version) of each file, or None while any of them has no version."""
    versions = []
    for path in paths:
        if (version := file_version(path)) is None:
            return None
        versions.append((str(path), version))
    return tuple(versions)


def kept_per_version(files_of: Callable[[Path], Iterable[Path]]):
    """Decorator for a function of a folder: its result is kept per version of the files `files_of(folder)`
    lists (a file added or removed is a new version), and computed anew while one of them changed
    recently. An exception is never kept: a failed check runs again. The last few versions are kept (a
    served process lives long, and every edit of a file is a version)."""
    def decorate(read: Callable[[Path], object]):
        @functools.lru_cache(maxsize=8)
        def kept(folder: Path, versions: tuple):
            return read(folder)

        @functools.wraps(read)
        def per_version(folder: Path | str):
            folder = Path(folder).resolve()
            versions = versions_of(files_of(folder))
            return read(folder) if versions is None else kept(folder, versions)

        per_version.cache_info = kept.cache_info
        return per_version
    return decorate


def write_whole(path: Path, data: bytes) -> None:
    """PATH holds DATA, written beside it and renamed over it, with the permissions it had; a symbolic link
    stays one (its target is written)."""
    path = Path(path).resolve()
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    if path.exists():
        shutil.copymode(path, partial)
    os.replace(partial, path)
