"""Issue 25, item 5: a second `pip install ".[x]"` from the same checkout reuses the compiled extension.

pip builds every install in a new isolated environment (its own pybind11 under /tmp/pip-build-env-*), and
scikit-build-core then deletes CMakeCache.txt and the top-level CMakeFiles/ of the kept build directory. Ninja
skips an object only if it survives that and its compile command is unchanged. This configures the project twice
as such two installs do, with pybind11 at two different places and the cache cleared between, and checks both
conditions for every object: its compile command is the same and names neither place, and it lives below a
subdirectory's CMakeFiles/. (Measured with two real installs, see the issue 25 report: 38 objects compiled by
each install before, none by the second after.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def configure(build: Path, pybind11_root: Path) -> str:
    for stale in ("CMakeCache.txt", "CMakeFiles"):  # what scikit-build-core clears for a new environment
        path = build / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    f"-Dpybind11_DIR={pybind11_root / 'share' / 'cmake' / 'pybind11'}",
                    f"-DPython_EXECUTABLE={sys.executable}"], check=True, capture_output=True, timeout=300)
    return (build / "build.ninja").read_text()


def compile_commands(ninja: str) -> dict[str, str]:
    """Each object's build statement with its variables (FLAGS, INCLUDES, DEFINES...), by object path."""
    out: dict[str, str] = {}
    for block in re.split(r"\n(?=build )", ninja):
        head = re.match(r"build ([^:]+\.o): CXX_COMPILER", block)
        if head:
            out[head.group(1)] = block.split("\n\n")[0]
    return out


def test_a_second_install_compiles_nothing(tmp_path: Path) -> None:
    pybind11 = pytest.importorskip("pybind11")
    if shutil.which("cmake") is None or shutil.which("ninja") is None:
        pytest.skip("needs cmake and ninja on PATH")
    envs = []
    for name in ("pip-build-env-a", "pip-build-env-b"):  # two isolated environments, one pybind11 each
        envs.append(tmp_path / name / "pybind11")
        shutil.copytree(Path(pybind11.__file__).parent, envs[-1])
    build = tmp_path / "build"
    first = compile_commands(configure(build, envs[0]))
    second = compile_commands(configure(build, envs[1]))
    assert len(first) >= 10 and "kernels/CMakeFiles/_core.dir/bindings.cpp.o" in first
    assert first == second  # the same commands: Ninja sees every object up to date
    for obj, command in first.items():
        assert not obj.startswith("CMakeFiles/"), obj  # would be deleted with the cache
        assert "pip-build-env" not in command, obj
