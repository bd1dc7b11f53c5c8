"""Atomic, durable file writes shared by artifacts and checkpoints: a crash or a power cut leaves the old file
or the new one, and the temporary files a killed writer leaves behind are removed by the next write of the
same target (or named, where they cannot be removed).

Durability: the data is synced before the rename (else the new name could point at blocks never written), and
the folder after it (else the rename itself could be lost with the folder's unsynced entry).

Temporary files are named `.<name>.<host>-<pid>.<random>.tmp`: a later writer on the same host removes one
whose process no longer exists at once; any other (another host's, or from an older dlc without the pid) once
it is older than STALE_SECONDS, so a concurrent writer's file is never touched.
"""

from __future__ import annotations

import glob
import os
import secrets
import socket
import time
import warnings
import zlib
from pathlib import Path

STALE_SECONDS = 60  # a temporary file this old is no concurrent writer's


def _host_tag() -> str:
    return format(zlib.crc32(socket.gethostname().encode()), "08x")


def temporary_files(target: Path) -> list[Path]:
    """The temporary names writes of `target` use (`.<name>.<...>.tmp` beside it)."""
    return list(target.resolve().parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def _writer_gone(tmp: Path) -> bool:
    """Whether the process that wrote `tmp` on this host has ended (False when that cannot be known)."""
    writer = tmp.name.rsplit(".", 3)[-3]  # <host>-<pid>, or a random hex of the older form
    host, _, pid = writer.partition("-")
    if host != _host_tag() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (owned by another user, say)
        return False
    return False


def remove_stale(target: Path) -> None:
    """Removes temporary files of `target` left by a writer that was killed (SIGKILL runs no cleanup); one that
    cannot be removed is named in a warning, so the space it holds is not lost silently."""
    stale = time.time() - STALE_SECONDS
    for old in temporary_files(target):
        try:
            if _writer_gone(old) or old.stat().st_mtime < stale:
                old.unlink()
        except FileNotFoundError:
            pass  # another writer removed or replaced it first
        except OSError as e:
            warnings.warn(f"{old}: an interrupted save of {target.name} left this temporary file and it cannot "
                          f"be removed ({e.strerror or e}); delete it by hand", RuntimeWarning, stacklevel=3)


def sync_folder(folder: Path) -> None:
    """fsync of a directory, where the platform has it (POSIX; Windows cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories (EINVAL); there is nothing more to do
    finally:
        os.close(fd)


def write_atomically(target: Path, data: bytes) -> None:
    """Writes through a fresh temporary name beside the target (same file system, so os.replace is atomic),
    created by us so it gets the usual umask permissions; syncs the data before the rename and the folder
    after it. Temporary files of this target that a killed writer left behind are removed first."""
    remove_stale(target)
    folder = target.resolve().parent
    tmp = folder / f".{target.name}.{_host_tag()}-{os.getpid()}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(folder)
