"""The slowest model text under the size limit: adversarial inputs of up to 4 MiB, each timed through the
parser (accepted or refused), to check that every input under the limits is answered in under a second.

    python benchmarks/parse_limits.py [--json out.json]

Each case is built to push one cost as far as the limits allow: separators, blank and comment lines, long
tokens, the most tokens per statement and statements per file, deep nesting, long operator chains, and errors
found at the end of a large file (which also run the bracket diagnosis).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Callable

from dlc.errors import CompileError
from dlc.frontend import parser

LIMIT = parser.MAX_SOURCE_BYTES
HEAD = "input x: f32[2, 3]\n"
TAIL = "output y = relu(x)\n"


def _fill(unit: str, room: int) -> str:
    return unit * max(room // len(unit), 0)


def _tokens(text: str) -> int:
    return len(parser._TOKEN.findall(text))


def _up_to_bound(pieces: list[str]) -> str:
    """HEAD, as many of `pieces` (cycled) as the token and statement bounds let through, TAIL."""
    room, parts, i = parser.MAX_TOKENS - _tokens(HEAD + TAIL) - 2, [HEAD], 0
    while True:
        piece = pieces[i % len(pieces)].replace("#", str(i))
        room -= _tokens(piece)
        if room < 0 or i >= parser.MAX_STATEMENTS - 3:
            return "".join(parts) + TAIL
        parts.append(piece)
        i += 1


def _statements(stmt: str) -> str:
    return _up_to_bound([stmt])


def _one_statement(first: str, unit: str, last: str = "") -> str:
    """Statements as long as allowed, as many as the token bound allows."""
    n = (parser.MAX_STATEMENT_TOKENS - _tokens(first + last) - 2) // max(_tokens(unit), 1)
    full = first + unit * n + last + "\n"
    pieces = [full] * ((parser.MAX_TOKENS - 20) // _tokens(full))
    rest = (parser.MAX_TOKENS - _tokens(HEAD + TAIL) - sum(map(_tokens, pieces)) - 20 - _tokens(first + last))
    pieces.append(first + unit * max(rest // max(_tokens(unit), 1), 0) + last + "\n")
    return HEAD + "".join(p.replace("@", str(i)) for i, p in enumerate(pieces)) + TAIL


CASES: dict[str, Callable[[], str]] = {
    "4 MiB of ';'": lambda: _fill(";", LIMIT),
    "4 MiB of ';' after a statement": lambda: HEAD + _fill(";", LIMIT - len(HEAD)),
    "4 MiB of line ends": lambda: HEAD + _fill("\n", LIMIT - 64) + TAIL,
    "4 MiB of ';\\n'": lambda: HEAD + _fill(";\n", LIMIT - 64) + TAIL,
    "4 MiB of comment lines": lambda: HEAD + _fill("#\n", LIMIT - 64) + TAIL,
    "4 MiB of '\\n #' (gap before a |>)": lambda: HEAD + "h = x" + _fill("\n #", LIMIT - 64) + "\n|> relu\n" + TAIL,
    "blank and comment lines up to the token bound": lambda: HEAD + "h = x\n" + "  # c\n\n" * (
        parser.MAX_TOKENS // 2 - 10) + "  |> relu\noutput y = h\n",
    "4 MiB of spaces": lambda: HEAD + " " * (LIMIT - 64) + TAIL,
    "4 MiB comment": lambda: HEAD + "#" + "c" * (LIMIT - 64) + "\n" + TAIL,
    "4 MiB string": lambda: HEAD + 'output y = relu(x, "' + "s" * (LIMIT - 64) + '")\n',
    "4 MiB name": lambda: HEAD + "output y = " + "n" * (LIMIT - 64) + "\n",
    "4 MiB number": lambda: HEAD + "output y = x * " + "9" * (LIMIT - 64) + "\n",
    "statements 'a# = x + x * x'": lambda: _statements("a# = x + x * x\n"),
    "statements 'a#=x;'": lambda: _statements("a#=x;"),
    "statements of calls with keywords": lambda: _statements("a# = f(x, k=1, j=[1, 2])\n"),
    "longest sums": lambda: _one_statement("s@ = x", " + x"),
    "longest pipes": lambda: _one_statement("p@ = x", " |> relu"),
    "longest pipes, one a line": lambda: _one_statement("p@ = x", "\n    |> relu"),
    "longest lists": lambda: _one_statement("l@ = [1", ", 1", "]"),
    "longest calls": lambda: _one_statement("c@ = f(x", ", x", ")"),
    "longest calls with keywords": lambda: _one_statement("c@ = f(x", ", k=x", ")"),
    "longest nested calls": lambda: _one_statement("c@ = f(x", ", g(x)", ")"),
    "unary minus chains": lambda: _one_statement("m@ = ", "-", "x"),
    "power chains": lambda: _one_statement("w@ = x", " ** x"),
    "brackets 64 deep": lambda: _statements("a# = " + "(" * 64 + "x" + ")" * 64 + "\n"),
    "error at the end: unclosed bracket": lambda: _statements("a# = x + x * x\n")[:-2] + " + (x\n",
    "error at the end: stray token": lambda: _statements("a# = x + x * x\n") + "output = = \n",
    "error at the end: bad character": lambda: _statements("a# = x + x * x\n") + "y = x $ x\n",
}


def run(repeat: int = 3) -> list[dict[str, object]]:
    parser._parser()  # the grammar is compiled once per process; not part of any parse
    rows = []
    for name, make in CASES.items():
        text = make()
        best, cpu, outcome = float("inf"), float("inf"), ""
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            try:
                parser.parse(text)
                outcome = "accepted"
            except CompileError as e:
                outcome = "refused: " + e.message[:60]
            best, cpu = min(best, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
        tokens = min(len(parser._TOKEN.findall(text)), parser.MAX_TOKENS + 1)
        rows.append({"case": name, "bytes": len(text.encode()), "tokens": tokens, "seconds": round(best, 4),
                     "cpu_seconds": round(cpu, 4), "outcome": outcome})
        print(f"{best:7.3f} s {cpu:6.3f} s cpu {len(text.encode()):>9,} B {tokens:>7,} tok  {name:44s} {outcome}",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many parses per case")
    args = ap.parse_args()
    rows = run(args.repeat)
    worst = max(rows, key=lambda r: float(r["cpu_seconds"]))  # type: ignore[arg-type]
    print(f"slowest: {worst['case']} ({worst['cpu_seconds']} s of CPU, {worst['seconds']} s wall) "
          f"on {platform.processor() or platform.machine()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "slowest": worst}, f, indent=1)


if __name__ == "__main__":
    main()
