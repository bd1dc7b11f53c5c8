"""Text data for character-level language models, and sampling from them.

`pysource`: the Python standard library's own source, present on every machine that runs dlc. The `.py` files
under `sysconfig.get_paths()["stdlib"]` (third-party `site-packages` excluded) are read in sorted path order and
joined with newlines up to `max_bytes`; the first `1 - val_fraction` of the bytes train, the rest validate (a
fixed split, no shuffling across it). Tokens are bytes: a fixed vocabulary of 256 ids, so any text round-trips.
Windows do not overlap: x = text[i T : (i+1) T], y = the same window shifted by one (the next characters).

    train, val = load_pysource(seq_len=128)          # {"x": i32[N, 128], "y": i32[N, 128]} each
    program.fit(train, validation=val)
    print(sample(program, "def main(", length=300, temperature=0.8, seed=0))

The exact bytes depend on the Python version (3.11's stdlib differs from 3.12's); `describe_pysource` reports
the file count and size so results can be compared.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 256
DEFAULT_MAX_BYTES = 3_000_000
_EXCLUDED_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def _source_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if not _EXCLUDED_DIRS & set(p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def pysource_bytes(max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """The corpus as uint8 byte values, at most max_bytes long."""
    chunks: list[bytes] = []
    total = 0
    for path in _source_files():
        if total >= max_bytes:
            break
        data = path.read_bytes() + b"\n"
        chunks.append(data)
        total += len(data)
    return np.frombuffer(b"".join(chunks)[:max_bytes], dtype=np.uint8)


def windows(data: np.ndarray, seq_len: int) -> dict[str, np.ndarray]:
    """Non-overlapping (input, next-character target) windows of length seq_len."""
    n = (len(data) - 1) // seq_len
    if n < 1:
        raise ValueError(f"text of {len(data)} bytes is too short for windows of {seq_len}")
    ids = data.astype(np.int32)
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = ids[1:n * seq_len + 1].reshape(n, seq_len)
    return {"x": x, "y": y}


def load_pysource(seq_len: int = 128, max_bytes: int = DEFAULT_MAX_BYTES,
                  val_fraction: float = 0.1) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train, validation) windows {"x": i32[N, seq_len], "y": i32[N, seq_len]} of the stdlib source."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    data = pysource_bytes(max_bytes)
    cut = int(len(data) * (1.0 - val_fraction))
    return windows(data[:cut], seq_len), windows(data[cut:], seq_len)


def unigram_entropy(ids: np.ndarray) -> float:
    """Entropy of the character frequencies in nats: the loss of the best model that ignores context."""
    counts = np.bincount(np.asarray(ids).reshape(-1), minlength=VOCAB).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def describe_pysource(max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    files = _source_files()
    data = pysource_bytes(max_bytes)
    return {"root": sysconfig.get_paths()["stdlib"], "files_available": len(files), "bytes": int(len(data))}


def _token_io(program: Any) -> tuple[str, str, int | None]:
    """The model's integer input (first), its logits output (first) and its fixed window length, if any."""
    ins = [n for n, s in program.inputs.items() if s.dtype in ("i32", "i64")]
    if not ins:
        raise ValueError("the model has no integer input to feed characters to")
    spec = program.inputs[ins[0]]
    if len(spec.shape) != 2:
        raise ValueError(f"input '{ins[0]}' must be [batch, time], got {spec}")
    out = next(iter(program.outputs))
    length = spec.shape[1] if isinstance(spec.shape[1], int) else None
    return ins[0], out, length


def sample(program: Any, prompt: str, length: int = 200, temperature: float = 1.0, seed: int = 0,
           window: int = 128) -> str:
    """Continues `prompt` by `length` characters drawn from softmax(logits / temperature).

    Each step re-runs the model on the last `window` bytes (the model's own time length when it is fixed) and
    reads the logits at the final position; shorter contexts are left-padded with newlines, so one compiled
    plan serves every step. temperature 0 picks the most likely character."""
    name, out, fixed = _token_io(program)
    window = fixed or window
    dtype = np.int64 if program.inputs[name].dtype == "i64" else np.int32
    rng = np.random.default_rng(seed)
    context = bytearray(b"\n" * window + prompt.encode("utf-8"))
    generated = bytearray()
    was_training = program.training
    program.eval()
    try:
        for _ in range(length):
            x = np.frombuffer(bytes(context[-window:]), dtype=np.uint8).astype(dtype)[None, :]
            logits = program(**{name: x})[out][0, -1].astype(np.float64)
            if temperature <= 0:
                nxt = int(np.argmax(logits))
            else:
                z = logits / temperature
                p = np.exp(z - z.max())
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            context.append(nxt)
            generated.append(nxt)
    finally:
        if was_training:
            program.train()
    return prompt + generated.decode("utf-8", errors="replace")
