"""Atomic file writes shared by artifacts and checkpoints: a crash leaves the old file or the new one, and the
temporary files a killed writer leaves behind are removed by the next write of the same target."""

from __future__ import annotations

import glob
import os
import secrets
import time
from pathlib import Path

STALE_SECONDS = 60  # a temporary file this old is no concurrent writer's


def temporary_files(target: Path) -> list[Path]:
    """The temporary names writes of `target` use (`.<name>.<random>.tmp` beside it)."""
    return list(target.resolve().parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def remove_stale(target: Path) -> None:
    """Removes temporary files of `target` left by a writer that was killed (SIGKILL runs no cleanup)."""
    stale = time.time() - STALE_SECONDS
    for old in temporary_files(target):
        try:
            if old.stat().st_mtime < stale:
                old.unlink()
        except OSError:
            pass  # another writer removed or replaced it first


def write_atomically(target: Path, data: bytes) -> None:
    """Writes through a fresh temporary name beside the target (same file system, so os.replace is atomic),
    created by us so it gets the usual umask permissions. Temporary files of this target that a killed writer
    left behind (older than a minute, so a concurrent writer's are spared) are removed first."""
    remove_stale(target)
    folder = target.resolve().parent
    tmp = folder / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
