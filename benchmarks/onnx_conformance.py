"""ONNX conformance of dlc's importer: every node test case that ships inside the `onnx` package and the model
cases with reference outputs (light/, pytorch-converted/, pytorch-operator/), as a table per op:
passed, failed (imported but wrong or crashed), not supported (refused by the importer with its error).

    python benchmarks/onnx_conformance.py [--models] [--op Conv] [--failures] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time

from dlc.onnx import conformance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", action="store_true", help="also run the model cases (slower)")
    parser.add_argument("--op", action="append", help="only these ops (repeatable)")
    parser.add_argument("--failures", action="store_true", help="list every failed case with its reason")
    parser.add_argument("--reasons", action="store_true", help="list the reasons of unsupported cases")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cases = conformance.node_cases(set(args.op) if args.op else None)
    if args.models:
        cases += conformance.model_cases()
    results = [conformance.run_case(c) for c in cases]
    supported = conformance.supported_ops()
    rows = conformance.table(results)
    if args.markdown:
        print("| op | claimed | passed | failed | not supported |\n|---|---|---|---|---|")
        for op, p, f, u in rows:
            print(f"| {op} | {'yes' if op in supported else ''} | {p} | {f} | {u} |")
    else:
        print(f"{'op':<34} {'claimed':>7} {'passed':>7} {'failed':>7} {'unsupp.':>7}")
        for op, p, f, u in rows:
            print(f"{op:<34} {'yes' if op in supported else '':>7} {p:>7} {f:>7} {u:>7}")
    total = conformance.summary(results)
    claimed = conformance.summary([r for r in results if r.case.op in supported])
    print(f"\nall cases: {len(results)}  passed {total['passed']}  failed {total['failed']}  "
          f"not supported {total['unsupported']}")
    print(f"cases of claimed ops: {sum(claimed.values())}  passed {claimed['passed']}  failed {claimed['failed']}  "
          f"not supported {claimed['unsupported']}")
    bound = sum(1 for r in results if r.status == "passed" and r.detail)
    print(f"passed with weight/shape inputs bound as initializers: {bound}")
    print(f"{time.perf_counter() - start:.1f} s")
    if args.failures:
        for r in results:
            if r.status == "failed":
                print(f"FAILED {r.case.op} {r.case.name}: {r.detail}")
    if args.reasons:
        for r in results:
            if r.status == "unsupported":
                print(f"UNSUPPORTED {r.case.op} {r.case.name}: {r.detail.splitlines()[0][:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
