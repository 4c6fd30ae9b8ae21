"""Ingest benchmark: the full credit-card CSV through synthwatch vs a bare DuckDB CREATE TABLE AS read_csv.

Run by hand: `.venv/bin/python bench/ingest.py [--repeats 3] [--fixed-cost | --fixed-cost-only [--code DIR]]`.
Results go to stdout and bench/results/ingest.md (fixed_cost.md for --fixed-cost-only); the README quotes them.
`--code DIR` times the CLI of another checkout (e.g. `git archive` of an earlier release unpacked into DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bare_duckdb(csv: Path, db: Path) -> float:
    import duckdb

    start = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE creditcard AS SELECT * FROM read_csv('{csv}')")
    con.close()
    return time.perf_counter() - start


def synthwatch_ingest(csv: Path, db: Path) -> float:
    from flows.ingest import ingest_source
    from flows.warehouse import Warehouse

    start = time.perf_counter()
    result = ingest_source(Warehouse(db), csv, kind="tabular", table="creditcard")
    elapsed = time.perf_counter() - start
    assert result["rows"] == 284807, result["rows"]
    LOCK_SECONDS.append(result["write_lock_seconds"])
    return elapsed


LOCK_SECONDS: list[float] = []  # how long each ingest held the warehouse's write lock


READ_ONLY = (["tables"], ["models"], ["detect", "list"], ["server", "status"], ["datasets", "list"])


def cli_seconds(args: list[str], env: dict) -> float:
    """Wall time of one whole `synthwatch` process (interpreter start, imports, work, exit) of the checkout that
    env's PYTHONPATH names (also its working directory: `-m` puts that first on sys.path)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL,
                   cwd=env["PYTHONPATH"])
    return time.perf_counter() - start


def fixed_cost(work: Path, code: Path, repeats: int) -> list[str]:
    """The fixed cost of a command: read-only commands and a 10-row ingest, with the local server running, and on
    an ephemeral server; `code` is the checkout whose flows/ is timed (another release: a `git archive` of it)."""
    small = work / "ten.csv"
    small.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(10)))
    env = {**os.environ, "SYNTHWATCH_DATA_DIR": str(work / "cli"), "PYTHONPATH": str(code),
           "SYNTHWATCH_AUTO_SERVER": "1"}
    for name in ("PREFECT_API_URL", "SYNTHWATCH_PREFECT_HOME", "SYNTHWATCH_DB", "SYNTHWATCH_CONFIG"):
        env.pop(name, None)
    ingest = ["ingest", str(small), "--kind", "tabular", "--table"]
    rows: list[tuple[str, list[float]]] = []
    cli_seconds(["server", "stop"], env)
    cold = [cli_seconds([*ingest, "cold"], env)]  # this release: starts the server; an older one: ephemeral
    cli_seconds(["server", "start"], env)  # a no-op when the command above left one running
    try:
        rows.append(("10-row ingest, local server running", [cli_seconds([*ingest, f"s{i}"], env)
                                                             for i in range(max(repeats, 5))]))
        for argv in READ_ONLY:
            rows.append((f"`{' '.join(argv)}`", [cli_seconds(argv, env) for _ in range(5)]))
    finally:
        cli_seconds(["server", "stop"], env)
    eph_env = {**env, "SYNTHWATCH_AUTO_SERVER": "0"}
    rows.append(("10-row ingest, ephemeral server (`SYNTHWATCH_AUTO_SERVER=0`)",
                 [cli_seconds([*ingest, f"e{i}"], eph_env) for i in range(repeats)]))
    rows.append(("10-row ingest, no server running yet (first command)", cold))
    lines = [f"| command (whole process), code: {code} | runs | median s | min-max s |", "|---|---|---|---|"]
    lines += [f"| {name} | {len(t)} | {statistics.median(t):.2f} | {min(t):.2f}-{max(t):.2f} |" for name, t in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fixed-cost", action="store_true",
                        help="also time read-only commands and a 10-row ingest through the CLI")
    parser.add_argument("--fixed-cost-only", action="store_true", help="only the CLI timings (no 151 MB ingest)")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="checkout whose CLI the fixed-cost timings run (default: this one)")
    args = parser.parse_args()
    if args.fixed_cost_only:
        work = Path(tempfile.mkdtemp(prefix="bench-fixed-", dir=ROOT / "data"))
        try:
            table = "\n".join(fixed_cost(work, args.code.resolve(), args.repeats))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{os.cpu_count()} cores\n{table}")
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "fixed_cost.md").write_text(table + "\n")
        return
    from flows.datasets import fetch

    fetch("creditcard", ROOT / "data" / "raw")
    csv = ROOT / "data" / "raw" / "creditcard" / "creditcard.csv"
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=ROOT / "data"))
    bare, ours = [], []
    try:
        synthwatch_ingest(csv, work / "warm.duckdb")  # imports and GX context warm-up, not timed
        for i in range(args.repeats):
            # Alternate the order so drift on this shared machine hits both sides alike.
            pair = [("bare", bare_duckdb, bare), ("ours", synthwatch_ingest, ours)]
            for name, fn, out in (pair if i % 2 == 0 else pair[::-1]):
                out.append(fn(csv, work / f"{name}{i}.duckdb"))
        size_mb = csv.stat().st_size / 1e6
        rows = 284807
        lines = [
            "| measure | bare DuckDB CTAS | synthwatch ingest (read + GX validation + write + bookkeeping) |",
            "|---|---|---|",
            f"| wall time, median of {args.repeats} (s) | {statistics.median(bare):.2f} | {statistics.median(ours):.2f} |",
            f"| rows/s | {rows / statistics.median(bare):,.0f} | {rows / statistics.median(ours):,.0f} |",
            f"| MB/s | {size_mb / statistics.median(bare):.1f} | {size_mb / statistics.median(ours):.1f} |",
            f"| ratio to bare DuckDB | 1.00 | {statistics.median(ours) / statistics.median(bare):.2f} |",
            f"| write lock held, median (s) | {statistics.median(bare):.2f} (all of it) | "
            f"{statistics.median(LOCK_SECONDS[1:]):.2f} (read and validation run before it) |",
        ]
        if args.fixed_cost:
            lines += ["", *fixed_cost(work, args.code.resolve(), args.repeats)]
        table = "\n".join(lines)
        print(f"credit-card CSV: {size_mb:.0f} MB, {rows:,} rows, {os.cpu_count()} cores\n{table}")
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "ingest.md").write_text(table + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
