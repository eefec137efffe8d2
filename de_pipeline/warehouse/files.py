"""Files that survive a crash, and scratch folders that a killed process leaves behind.

A file of the archive is written beside its target, flushed to disk and then renamed over
it, so a crash leaves the old file or the new one, never a torn one. A scratch folder is
named after the process that owns it, `.<kind>-<host>-<pid>-<random>`, so that a later run
can tell a folder of a killed process (removed) from one that a running process is still
filling (kept).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SCRATCH_KINDS = ("staging", "journey", "spill")
HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"
# used with fullmatch: `$` would allow a final newline
_OWNED = re.compile(r"\.(?P<kind>[a-z]+)-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+")


def fsync_directory(path: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_durably(source: Path, target: Path, *, read_only: bool = False) -> None:
    """Rename `source` over `target` (same file system) once its bytes are on disk, with the
    mode of a new file of this process (see shared_mode)."""
    os.chmod(source, shared_mode(read_only=read_only))
    with open(source, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(source, target)
    fsync_directory(target.parent)


def write_text_durably(path: Path, text: str) -> None:
    """Replace `path` with `text` whole: readers see the old text or the new, even after a crash."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        replace_durably(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def shared_mode(*, read_only: bool = False) -> int:
    """The mode a file the pipeline shares (dashboard, archive, readers' copy, exports) ends
    with: a new file's under the process's umask, as `open` gives it. Not mkstemp's 0600,
    which hid the dashboard from the team, nor a fixed 0644, which ignores a umask of 077."""
    mode = 0o666 & ~current_umask()
    return mode & ~0o222 if read_only else mode


def current_umask() -> int:
    """The process's umask. Read from /proc on Linux: os.umask can only read it by setting
    it, which another thread could catch half-way and create a file with the wrong mode."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return _UMASK_AT_IMPORT
    for line in status.splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    return _UMASK_AT_IMPORT


def _umask_now() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _umask_now()  # where /proc is missing: set and restored once, at import


def free_disk_bytes(path: Path) -> int:
    """The bytes this process may still write on the file system of `path`."""
    return shutil.disk_usage(path).free


def owned_scratch_dir(parent: Path, kind: str) -> Path:
    """A new private folder `<parent>/.<kind>-<host>-<pid>-<random>` of this process."""
    if kind not in SCRATCH_KINDS:
        raise ValueError(f"unknown scratch folder kind {kind!r}")
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{kind}-{HOST}-{os.getpid()}-", dir=parent))


@contextmanager
def private_spill_dir() -> Iterator[Path]:
    """A new folder of this process (mode 0700) in the system's temp folder ($TMPDIR), for
    DuckDB to spill to, removed afterwards; first removes the ones killed processes left."""
    parent = Path(tempfile.gettempdir())
    remove_leftovers(parent)
    folder = owned_scratch_dir(parent, "spill")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Log(Protocol):
    """A `logging.Logger` or Dagster's `context.log`."""

    def info(self, msg: str, *args: Any) -> None: ...
    def warning(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class Leftovers:
    """Scratch folders found in a folder: `removed` (their process is gone), `in_use` (a
    process of this host still runs), `unknown` (another host's, or the name does not say)."""

    folder: Path
    removed: tuple[str, ...] = ()
    in_use: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    def summary(self) -> str | None:
        """One line for the log, or None when there is nothing to say."""
        parts = [
            f"{verb} {len(names)} {why}: {', '.join(names)}"
            for verb, names, why in (
                ("removed", self.removed, "left by killed runs"),
                ("kept", self.in_use, "in use by a running process"),
                ("kept", self.unknown, "of another host or an unknown owner (remove by hand once no run uses them)"),
            )
            if names
        ]
        return f"scratch folders in {self.folder}: " + "; ".join(parts) if parts else None


def remove_leftovers(parent: Path, log: Log | None = None) -> Leftovers:
    """Remove the scratch folders in `parent` whose process on this host is gone, and say
    what was found in one log line (a warning if a killed run or an unknown owner left any)."""
    found: dict[str, list[str]] = {"removed": [], "in_use": [], "unknown": []}
    entries = sorted(parent.iterdir()) if parent.is_dir() else []
    prefixes = tuple(f".{kind}-" for kind in SCRATCH_KINDS)
    for entry in entries:
        if not entry.name.startswith(prefixes) or not entry.is_dir():
            continue
        owner = _OWNED.fullmatch(entry.name)
        if not owner or owner["host"] != HOST:
            found["unknown"].append(entry.name)
        elif _is_running(int(owner["pid"])):
            found["in_use"].append(entry.name)
        else:
            shutil.rmtree(entry, ignore_errors=True)
            found["unknown" if entry.exists() else "removed"].append(entry.name)
    leftovers = Leftovers(parent, **{key: tuple(names) for key, names in found.items()})
    line = leftovers.summary()
    if log is not None and line is not None:
        (log.warning if leftovers.removed or leftovers.unknown else log.info)(line)
    return leftovers


def _is_running(pid: int) -> bool:
    """Whether process `pid` of this host runs; True when unsure (0 would be a process group)."""
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; not a pid
        return True
    return True
