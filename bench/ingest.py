"""Ingest benchmark: the full credit-card CSV through synthwatch vs a bare DuckDB CREATE TABLE AS read_csv.

Run by hand: `.venv/bin/python bench/ingest.py [--repeats 3] [--fixed-cost]`. Results go to stdout and
bench/results/ingest.md; the README quotes them.
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


def cli_seconds(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "synthwatch"), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fixed-cost", action="store_true", help="also time a 10-row ingest through the CLI")
    args = parser.parse_args()
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
            small = work / "ten.csv"
            small.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(10)))
            env = {**os.environ, "SYNTHWATCH_DATA_DIR": str(work / "cli")}
            eph = [cli_seconds(["ingest", str(small), "--kind", "tabular", "--table", f"t{i}"], env)
                   for i in range(2)]
            cli_seconds(["server", "start"], env)
            try:
                srv = [cli_seconds(["ingest", str(small), "--kind", "tabular", "--table", f"s{i}"], env)
                       for i in range(3)]
            finally:
                cli_seconds(["server", "stop"], env)
            lines += ["", "| 10-row ingest through the CLI (whole process) | seconds (median) |", "|---|---|",
                      f"| ephemeral Prefect server (started per command) | {statistics.median(eph):.1f} |",
                      f"| local server (`synthwatch server start`) | {statistics.median(srv):.1f} |"]
        table = "\n".join(lines)
        print(f"credit-card CSV: {size_mb:.0f} MB, {rows:,} rows, {os.cpu_count()} cores\n{table}")
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "ingest.md").write_text(table + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
