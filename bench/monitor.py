"""How fast does monitoring keep up? The ULB transactions replayed hour by hour through the inbox, scored, recorded.

Run by hand (about 5-8 minutes on 2 cores):
    flock /work/heavy.lock .venv/bin/python bench/monitor.py [--detector iforest] [--copies K]
In one run, on the real ULB credit-card data (284,807 transactions over 48 hours) replayed `--copies` times (default
4), one copy after the other in time, as hourly files (192 by default):
- peer: bare scoring: DuckDB reads the table and the same detector scores every row (no inbox, no drift, no writes);
- the first hourly file, which creates the monitored table through the ingest's expectation suite (a one-off), is
  monitored and timed apart;
- monitor (library): `flows.monitor.monitor_once` over the next files (all but the first and the last): ingest
  them as batches, score, drift (PSI/KS of 30 features and the score), events, all writes, one process;
- monitor (flow): `synthwatch monitor run` as a user runs it, on the same warehouse and the same files: a fresh
  process (imports included) running the Prefect flow on the local server (started before and timed apart, as
  `schedule start` leaves it up for scheduled runs);
- latency: one more hourly file dropped into the inbox, then `monitor_once`: seconds from the file's arrival to its
  alerts being committed.
Rows per second are end to end; the ratio to the peer says what ingesting, drift and bookkeeping cost on top of the
detector. Results go to bench/results/monitor.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="iforest")
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, help="training epochs of a deep detector (the demo's: 2)")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE hyperparameter (repeatable)")
    parser.add_argument("--copies", type=int, default=4, help="the transactions this many times over, one after "
                        "the other in time (default 4: 1,139,228 rows in 192 hourly files)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="synthwatch-bench-monitor-", dir=ROOT / "data"))
    os.environ["SYNTHWATCH_DATA_DIR"] = str(work)
    config = work / "config.yaml"
    import yaml

    cfg = yaml.safe_load((ROOT / "flows" / "pipeline.yaml").read_text())
    cfg["monitor"].update({"inbox": str(work / "inbox"), "reference_table": "creditcard", "max_gap_minutes": None})
    config.write_text(yaml.safe_dump(cfg))
    os.environ["SYNTHWATCH_CONFIG"] = str(config)
    from flows.config import Settings
    from flows.prefect_env import configure_prefect

    settings = Settings.from_env()
    configure_prefect(settings.prefect_home, settings.data_dir)
    import duckdb
    import pandas as pd

    from flows.bookkeeping import record_table
    from flows.detect import train_detector
    from flows.monitor import MonitorSettings, load_champion, monitor_once
    from flows.replay import replay_table
    from flows.warehouse import Warehouse

    wh = Warehouse(settings.db_path)
    source = ROOT / "data" / "raw" / "creditcard" / "creditcard.csv"
    cc = duckdb.connect().execute(f"SELECT * FROM read_csv('{source}')").df()
    # the feed: the transactions `--copies` times over, each copy after the previous one in time (48 hours later),
    # so a run sees more arrivals than one copy holds and a run's fixed cost is weighed against a realistic volume
    span = 48 * 3600.0
    assert float(cc["Time"].max()) < span
    feed = pd.concat([cc.assign(Time=cc["Time"] + k * span) for k in range(args.copies)], ignore_index=True)
    with wh.transaction() as con:
        wh.write_frame(con, "creditcard", cc)
        record_table(con, "creditcard", kind="tabular", origin="ingested")
        wh.write_frame(con, "feed", feed)
        record_table(con, "feed", kind="tabular", origin="ingested")
    windows = int(feed["Time"].max() // 3600) + 1
    params = {k: json.loads(v) if v[:1] in "0123456789-[{tfn" else v
              for k, _, v in (p.partition("=") for p in args.param)}
    trained = train_detector(settings, table="creditcard", detector=args.detector, label_column="Class",
                             normal_value="0", max_train_rows=args.train_rows, epochs=args.epochs, params=params)
    model_id = trained["model_id"]
    results: dict = {"rows": len(feed), "detector": args.detector, "model_id": model_id, "copies": args.copies}

    # peer: bare scoring of the same rows by the same detector
    model, record, features = load_champion(wh, model_id)
    started = time.perf_counter()
    with wh.read() as con:
        frame = con.execute("SELECT * FROM main.feed").df()
    model.score(frame[features])
    results["bare_seconds"] = time.perf_counter() - started

    # the monitored table's first batch creates it, through the ingest's full expectation suite: a one-off, timed apart
    replay_table(settings, "feed", work / "inbox", start=0, files=1, drop=["Class"])
    monitor_cfg = MonitorSettings.from_config(settings.config["monitor"])
    started = time.perf_counter()
    first = monitor_once(settings, monitor_cfg)
    results["first_batch_seconds"] = time.perf_counter() - started
    results["first_batch_rows"] = first["rows"]
    # the next hourly files (the last is kept for the latency run), kept aside so the command sees the same ones
    staged = work / "staged"
    replay = replay_table(settings, "feed", staged, start=1, files=windows - 2, drop=["Class"])
    shutil.copy2(settings.db_path, work / "after-first-batch.duckdb")
    for path in sorted(staged.iterdir()):
        shutil.copy2(path, work / "inbox" / path.name)

    # the monitor, library path: one process, imports done
    started = time.perf_counter()
    out = monitor_once(settings, monitor_cfg)
    results["monitor_seconds"] = time.perf_counter() - started
    results["monitor_rows"] = out["rows"]
    results["files"] = len(replay["files"])

    # latency of one new hourly file
    replay_table(settings, "feed", work / "inbox", start=windows - 1, files=1, drop=["Class"])
    arrived = time.time()
    out = monitor_once(settings, monitor_cfg)
    results["latency_seconds"] = time.time() - arrived
    results["latency_rows"] = out["rows"]

    # the flow as a user runs it, in a fresh process, on the warehouse and inbox as they were before the library run
    shutil.copy2(work / "after-first-batch.duckdb", settings.db_path)
    for path in (work / "inbox" / "processed").iterdir():
        path.unlink()
    for path in sorted(staged.iterdir()):
        shutil.copy2(path, work / "inbox" / path.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # scheduled runs find the local server up (`synthwatch schedule start` started it): start it first, timed apart
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "server", "start"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    results["server_start_seconds"] = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "monitor", "run", "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    results["flow_seconds"] = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    results["flow_rows"] = json.loads(proc.stdout.strip().splitlines()[-1])["rows"]
    subprocess.run([sys.executable, "-m", "flows.cli", "server", "stop"], env=env, cwd=ROOT, capture_output=True)

    rps = lambda rows, s: rows / s  # noqa: E731
    lines = [f"# Monitor throughput ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d')})", "",
             f"ULB credit card {args.copies} times over, one copy after the other, {results['rows']:,} rows, "
             f"{results['files']} + 2 hourly files; detector "
             f"{args.detector} trained on {args.train_rows:,} normal rows"
             f"{f' ({args.epochs} epochs)' if args.epochs else ''}.", "",
             "| path | rows | seconds | rows/s | vs bare scoring |", "|---|---:|---:|---:|---:|",
             f"| bare scoring (peer: DuckDB read + score) | {results['rows']:,} | {results['bare_seconds']:.1f} | "
             f"{rps(results['rows'], results['bare_seconds']):,.0f} | 1.00 |",
             f"| monitor, library (inbox + score + drift + writes, one process) | {results['monitor_rows']:,} | "
             f"{results['monitor_seconds']:.1f} | {rps(results['monitor_rows'], results['monitor_seconds']):,.0f} | "
             f"{results['monitor_seconds'] / results['bare_seconds'] * results['rows'] / results['monitor_rows']:.2f} |",
             f"| monitor, `synthwatch monitor run` (fresh process, Prefect flow on the local server: the same inbox + "
             f"score + drift + writes) | {results['flow_rows']:,} | "
             f"{results['flow_seconds']:.1f} | {rps(results['flow_rows'], results['flow_seconds']):,.0f} | "
             f"{results['flow_seconds'] / results['bare_seconds'] * results['rows'] / results['flow_rows']:.2f} |",
             "", f"Both monitor rows cover the same {results['files']} hourly files. Timed apart: the table's first "
                 f"batch ({results['first_batch_rows']:,} rows), which creates it through the ingest's expectation "
                 f"suite, took {results['first_batch_seconds']:.1f} s once; starting the local Prefect server, which "
                 f"scheduled runs find up, took {results['server_start_seconds']:.1f} s once.",
             "", f"Latency of one new hourly file ({results['latency_rows']:,} rows): "
                 f"{results['latency_seconds']:.2f} s from arrival to alerts committed."]
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "monitor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(results, default=str))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
