"""Issue 27, durability: the atomic writer syncs the data before the rename and the folder after it, and the
temporary file of a save killed with SIGKILL is removed by the next save of that file at once (its writer's
process is gone), never a concurrent writer's."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import atomic_file
from dlc.atomic_file import temporary_files, write_atomically

# 4M parameters: 16 MB a save.
MODEL = ('input x: f32[N, 1024]\ninput t: f32[N, 4096]\noutput y = dense(x, 4096, name="big")\n'
         "train {\n  loss = mse(y, t)\n}\n")


def test_data_is_synced_before_the_rename_and_the_folder_after(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(a: str | Path, b: str | Path) -> None:
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path / "f.bin", b"data")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "f.bin").read_bytes() == b"data" and not temporary_files(tmp_path / "f.bin")


def test_a_temporary_file_of_a_live_writer_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    # This process is alive: a file named for it is a concurrent write in progress, however it came about.
    live = tmp_path / f".f.bin.{atomic_file._host_tag()}-{os.getpid()}.00ff.tmp"
    other_host = tmp_path / f".f.bin.00000000-1.00ff.tmp"
    live.write_bytes(b"partial")
    other_host.write_bytes(b"partial")
    write_atomically(target, b"new")
    assert live.exists() and other_host.exists()


def test_an_undeletable_temporary_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.bin"
    stale = tmp_path / ".f.bin.0123abcd.tmp"
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.warns(RuntimeWarning, match=r"\.f\.bin\.0123abcd\.tmp: an interrupted save of f\.bin left"):
        atomic_file.remove_stale(target)


SAVER = """
import sys
import dlc
p = dlc.compile(source=sys.argv[2], seed=1)
while True:
    p.save_checkpoint(sys.argv[1])
"""


def test_a_killed_save_leaves_the_old_checkpoint_and_its_temporary_file_goes_next_time(tmp_path: Path) -> None:
    target = tmp_path / "run.ckpt"
    expected = dlc.compile(source=MODEL, seed=1).params["big.weight"]
    killed_mid_write = False
    for _ in range(5):  # the kill must land while a temporary file exists; each try is a fresh saver
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(target), MODEL])
        try:
            deadline = time.monotonic() + 120
            while not temporary_files(target) and time.monotonic() < deadline and saver.poll() is None:
                time.sleep(0.001)
            os.kill(saver.pid, signal.SIGKILL)
        finally:
            saver.wait(timeout=60)
        if temporary_files(target):
            killed_mid_write = True
            break
    assert killed_mid_write, "no try killed the saver while it was writing"
    # The target is the last complete save or does not exist yet; never a torn file.
    if target.exists():
        loaded = dlc.compile(source=MODEL, seed=2)
        loaded.load_checkpoint(str(target))
        np.testing.assert_array_equal(loaded.params["big.weight"], expected)
    # The next save removes the dead writer's temporary file at once (no minute's wait) and succeeds.
    program = dlc.compile(source=MODEL, seed=1)
    program.save_checkpoint(str(target))
    assert not temporary_files(target)
    again = dlc.compile(source=MODEL, seed=3)
    again.load_checkpoint(str(target))
    np.testing.assert_array_equal(again.params["big.weight"], expected)
