"""Dashboard load benchmark: 1,000,000 scores in 100 batches, each page rendered headless, and pipeline writes timed
while the dashboard reads.

Run by hand: `.venv/bin/python bench/dashboard.py [--rows 1000000] [--batches 100] [--repeats 5] [--seconds 30]`.
Prints a Markdown table and writes bench/results/dashboard.md; the README (docs/dashboard.md) quotes it.

1. Builds a warehouse in a temp dir through `Warehouse.transaction()`: a 1M-row transactions table, its scores
   (100 batches, ~1% alerts), monitoring rows, drift per feature, events, 500 labels, a champion, a generator with a
   published synthetic table and its quality report.
2. Times each page's full render with Streamlit's AppTest (the script run: every query, figure and table), and the
   data functions behind it.
3. Times a pipeline write (append one 10,000-row batch of scores with its `_monitor_batches` row, then take it out
   again: two transactions) alone, then while another process renders dashboard pages in a loop, and reports how much
   longer the write took: with `Warehouse`'s own retry, and with a writer that retries every 0.05 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
APP = ROOT / "flows" / "dashboard" / "app.py"
PAGES = ("alerts", "monitoring", "models", "synthetic")
FEATURES = ["Time", "Amount"] + [f"V{i}" for i in range(1, 29)]
T0 = datetime(2026, 1, 1)


def build(data_dir: Path, rows: int, batches: int) -> dict:
    import numpy as np
    import pandas as pd

    from flows.bookkeeping import insert_row, record_table
    from flows.config import Settings
    from flows.warehouse import Warehouse

    settings = Settings.from_env(data_dir=data_dir)
    wh = Warehouse(settings.db_path)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    tx = pd.DataFrame({"id": np.char.add("t", np.arange(rows).astype(str)), "Time": np.arange(rows, dtype=float),
                       "Amount": rng.gamma(2.0, 40.0, rows).round(2),
                       **{c: rng.normal(0, 1, rows) for c in FEATURES[2:]}})
    model_id = "tx-ganomaly-bench"
    folder = settings.models_dir / model_id
    folder.mkdir(parents=True, exist_ok=True)
    stats = {c: [float(tx[c].mean()), float(tx[c].std())] for c in FEATURES}
    (folder / "model.json").write_text(json.dumps({"base_state": {"encoder": {"numeric": stats}}}))
    from safetensors.numpy import save_file

    save_file({"train_scores": rng.gamma(2.0, 1.0, 50_000)}, str(folder / "weights.safetensors"))
    per_batch = rows // batches
    score = rng.gamma(2.0, 1.0, rows)
    threshold = float(np.quantile(score, 0.99))
    batch_ids = np.repeat([f"b{i:04d}" for i in range(batches)], per_batch)
    arrived = [T0 + timedelta(hours=i) for i in range(batches)]
    scores = pd.DataFrame({"model_id": model_id, "table_name": "tx", "item_key": tx["id"].to_numpy()[:len(batch_ids)],
                           "score": score[:len(batch_ids)], "threshold": threshold,
                           "is_alert": score[:len(batch_ids)] > threshold,
                           "scored_at": np.repeat(np.array(arrived, dtype="datetime64[us]") + np.timedelta64(5, "m"),
                                                  per_batch),
                           "run_id": "bench", "batch_id": batch_ids})
    with wh.transaction() as con:
        wh.write_frame(con, "tx", tx)
        record_table(con, "tx", kind="tabular", origin="ingested")
        insert_row(con, "_detectors", {
            "model_id": model_id, "detector": "ganomaly", "table_name": "tx", "kind": "tabular", "path": str(folder),
            "feature_columns": json.dumps(FEATURES), "key_column": "id", "params": "{}", "n_train": 50_000,
            "n_validation": 10_000, "threshold": threshold, "threshold_source": "best_f1",
            "score_mode": "reconstruction", "auroc": 0.95, "auprc": 0.7, "precision": 0.8, "recall": 0.7,
            "source_hash": "h", "run_id": "bench", "created_at": T0, "made_by": "pipeline"})
        insert_row(con, "_champions", {"table_name": "tx", "model_id": model_id, "since": T0})
        wh.write_frame(con, "anomaly_scores", scores, mode="append", internal=True)
        for i, batch in enumerate(f"b{i:04d}" for i in range(batches)):
            part = score[i * per_batch:(i + 1) * per_batch]
            q = np.quantile(part, [0.5, 0.9, 0.99])
            insert_row(con, "_batches", {"batch_id": batch, "table_name": "tx", "inbox": "inbox",
                                         "file_name": f"{batch}.csv", "sha256": "0" * 64, "rows": per_batch,
                                         "status": "ingested", "arrived_at": arrived[i], "ingested_at": arrived[i]})
            insert_row(con, "_monitor_batches", {
                "model_id": model_id, "table_name": "tx", "batch_id": batch, "rows": per_batch,
                "alerts": int((part > threshold).sum()), "alert_rate": float((part > threshold).mean()),
                "score_p50": q[0], "score_p90": q[1], "score_p99": q[2], "score_max": float(part.max()),
                "psi_score": float(rng.gamma(1, 0.05)), "ks_score": 0.05, "max_feature_psi": float(rng.gamma(1, 0.1)),
                "arrived_at": arrived[i], "scored_at": arrived[i] + timedelta(minutes=5), "latency_seconds": 300.0})
        drift = pd.DataFrame([(model_id, f"b{i:04d}", f, float(rng.gamma(1, 0.05)), 0.05, arrived[i])
                              for i in range(batches) for f in ["__score__", *FEATURES]],
                             columns=["model_id", "batch_id", "feature", "psi", "ks", "computed_at"])
        con.register("drift_frame", drift)
        con.execute("INSERT INTO main._drift SELECT * FROM drift_frame")
        con.unregister("drift_frame")
        for i in range(0, batches, 10):
            insert_row(con, "monitoring_events", {
                "event_id": f"e{i}", "event_type": "drift", "table_name": "tx", "model_id": model_id,
                "batch_id": f"b{i:04d}", "message": f"score PSI 0.25 above 0.2 in batch b{i:04d}",
                "created_at": arrived[i]})
        alerts = scores[scores["is_alert"]].sort_values("score", ascending=False).head(500)
        for j, key in enumerate(alerts["item_key"]):
            insert_row(con, "_feedback", {"table_name": "tx", "item_key": key, "model_id": model_id,
                                          "label": "fraud" if j % 3 else "normal", "source": "cli",
                                          "created_at": T0})
        synth = tx.sample(32_561, random_state=1)
        wh.write_frame(con, "tx_synth", synth)
        record_table(con, "tx_synth", kind="tabular", origin="generated")
        insert_row(con, "_models", {
            "model_id": "tx_cart_1", "generator": "cart", "params": "{}", "source_table": "tx", "source_hash": "h",
            "train_table": "_train_tx_cart_1", "train_rows": rows, "holdout_rows": 0, "seed": 0,
            "fit_seconds": 12.0, "path": str(settings.models_dir / "g"), "created_at": T0, "made_by": "pipeline"})
        insert_row(con, "_generations", {"table_name": "tx_synth", "model_id": "tx_cart_1", "rows": len(synth),
                                         "published_schema": "main", "created_at": T0})
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
        report = settings.reports_dir / "tx_synth.html"
        report.write_text("<html><body>" + "<p>quality</p>" * 20_000 + "</body></html>")
        insert_row(con, "_quality_reports", {
            "report_id": "r1", "table_name": "tx_synth", "passed": True, "failing": "[]",
            "checks": json.dumps([{"name": "accuracy", "kind": "fidelity", "value": 0.9, "threshold": 0.85,
                                   "direction": "min", "passed": True}]), "thresholds": "{}", "source": "{}",
            "published_schema": "main", "report_path": str(report), "n_real": rows, "n_synthetic": len(synth),
            "seconds": 1.0, "created_at": T0})
    return {"db": str(settings.db_path), "data_dir": str(data_dir), "model_id": model_id,
            "build_seconds": time.perf_counter() - start, "alerts": int(scores["is_alert"].sum())}


def time_pages(repeats: int) -> dict[str, list[float]]:
    """Seconds per full render of each page (a fresh AppTest session, so the first render of a session)."""
    from streamlit.testing.v1 import AppTest

    times: dict[str, list[float]] = {p: [] for p in PAGES}
    for page in PAGES:  # warm: a running server has its modules imported
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.query_params["page"] = page
        at.run()
    for _ in range(repeats):
        for page in PAGES:
            at = AppTest.from_file(str(APP), default_timeout=120)
            at.query_params["page"] = page
            start = time.perf_counter()
            at.run()
            times[page].append(time.perf_counter() - start)
            if at.exception:
                raise RuntimeError(f"page {page}: {at.exception[0].value}")
    return times


def time_data_functions(db: str, data_dir: str, model_id: str, repeats: int) -> dict[str, float]:
    from flows.dashboard import data

    record = data.detector_record(db, model_id)
    models_dir = str(Path(data_dir) / "models")
    calls = {
        "warehouse_status": lambda: data.warehouse_status(db),
        "alert_queue (open, 50)": lambda: data.alert_queue(db, labelled="open", limit=50),
        "batches": lambda: data.batches(db),
        "item_fields (50 keys)": lambda: data.item_fields(
            db, record, "tx", data.alert_queue(db, limit=50)[0]["item_key"].tolist()),
        "monitor_batches (p@10)": lambda: data.monitor_batches(db, model_id),
        "feature_drift": lambda: data.feature_drift(db, model_id),
        "score_histogram": lambda: data.score_histogram(db, record, models_dir),
        "detectors": lambda: data.detectors(db),
        "synthetic_tables": lambda: data.synthetic_tables(db),
    }
    out = {}
    for name, call in calls.items():
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            runs.append(time.perf_counter() - start)
        out[name] = statistics.median(runs)
    return out


def pipeline_write(db: str, model_id: str, n: int = 10_000, poll: float | None = None) -> float:
    """One batch written the way the scoring flow writes it, then taken out again; seconds for the first (append).

    `poll`: instead of `Warehouse`'s own retry (its wait doubles from 0.05 s up to 1 s between attempts), try once
    every `poll` seconds: what a writer would see with a short fixed retry interval."""
    import numpy as np
    import pandas as pd

    from flows.bookkeeping import insert_row, now_utc
    from flows.errors import WarehouseBusy
    from flows.warehouse import Warehouse

    wh = Warehouse(db, busy_timeout=0 if poll else 60)
    batch = f"bench-{time.time_ns()}"
    frame = pd.DataFrame({"model_id": model_id, "table_name": "tx", "item_key": [f"w{i}" for i in range(n)],
                          "score": np.random.default_rng().gamma(2.0, 1.0, n), "threshold": 9.0, "is_alert": False,
                          "scored_at": now_utc(), "run_id": "writer", "batch_id": batch})
    start = time.perf_counter()
    while True:
        try:
            with wh.transaction() as con:
                wh.write_frame(con, "anomaly_scores", frame, mode="append", internal=True)
                insert_row(con, "_monitor_batches", {"model_id": model_id, "table_name": "tx", "batch_id": batch,
                                                     "rows": n, "alerts": 0, "alert_rate": 0.0,
                                                     "scored_at": now_utc()})
            break
        except WarehouseBusy:
            if not poll or time.perf_counter() - start > 60:
                raise
            time.sleep(poll)
    elapsed = time.perf_counter() - start
    wh = Warehouse(db, busy_timeout=60)
    with wh.transaction() as con:
        con.execute("DELETE FROM main.anomaly_scores WHERE batch_id = ?", [batch])
        con.execute("DELETE FROM main._monitor_batches WHERE batch_id = ?", [batch])
    return elapsed


def writes(db: str, model_id: str, seconds: float, poll: float | None = None) -> list[float]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(pipeline_write(db, model_id, poll=poll))
        time.sleep(0.3)
    return out


def render_loop(seconds: float) -> None:
    """(Subprocess) render every page over and over, as a busy analyst would, until `seconds` have passed."""
    from streamlit.testing.v1 import AppTest

    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        for page in PAGES:
            at = AppTest.from_file(str(APP), default_timeout=120)
            at.query_params["page"] = page
            at.run()
            n += 1
    print(json.dumps({"renders": n}))


def describe(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, max {max(values):.3f} s (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each write-timing phase")
    parser.add_argument("--render-loop", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_loop:
        render_loop(args.render_loop)
        return 0
    with tempfile.TemporaryDirectory(prefix="synthwatch-bench-dashboard-") as tmp:
        os.environ["SYNTHWATCH_DATA_DIR"] = tmp
        os.environ.pop("SYNTHWATCH_DB", None)
        built = build(Path(tmp), args.rows, args.batches)
        print(f"built {args.rows:,} scores in {args.batches} batches ({built['alerts']:,} alerts) in "
              f"{built['build_seconds']:.1f} s", flush=True)
        functions = time_data_functions(built["db"], tmp, built["model_id"], args.repeats)
        pages = time_pages(args.repeats)
        alone = writes(built["db"], built["model_id"], args.seconds)
        env = {**os.environ, "SYNTHWATCH_DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}
        reader = subprocess.Popen([sys.executable, __file__, "--render-loop", str(2 * args.seconds + 5)], env=env,
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(3)  # the reader is rendering before the first timed write
        concurrent = writes(built["db"], built["model_id"], args.seconds)
        polled = writes(built["db"], built["model_id"], args.seconds, poll=0.05)
        out, _ = reader.communicate(timeout=2 * args.seconds + 300)
        renders = json.loads(out.strip().splitlines()[-1])["renders"]
    delays = [c - statistics.median(alone) for c in concurrent]
    polled_delays = [c - statistics.median(alone) for c in polled]
    lines = [f"# Dashboard load ({args.rows:,} scores, {args.batches} batches, {built['alerts']:,} alerts; "
             f"{datetime.now():%Y-%m-%d}, 2 cores)", "",
             "| page | full render (AppTest), median | max |", "|---|---|---|"]
    lines += [f"| {p} | {statistics.median(v):.2f} s | {max(v):.2f} s |" for p, v in pages.items()]
    lines += ["", "| data function | median |", "|---|---|"]
    lines += [f"| {name} | {sec * 1000:.0f} ms |" for name, sec in functions.items()]
    lines += ["", "| pipeline write (10,000 scores + a `_monitor_batches` row, one transaction) | seconds |",
              "|---|---|", f"| alone | {describe(alone)} |",
              f"| while the dashboard renders pages in a loop ({renders} renders) | {describe(concurrent)} |",
              f"| delay against the median alone | median {statistics.median(delays):.3f} s, max "
              f"{max(delays):.3f} s |",
              f"| same, the writer retrying every 0.05 s instead of `Warehouse`'s doubling wait | "
              f"{describe(polled)} |",
              f"| its delay against the median alone | median {statistics.median(polled_delays):.3f} s, max "
              f"{max(polled_delays):.3f} s |"]
    text = "\n".join(lines)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "dashboard.md").write_text(text + "\n")
    slow = [p for p, v in pages.items() if statistics.median(v) > 2.0]
    return 1 if slow or max(delays) > 1.0 else 0


if __name__ == "__main__":
    sys.exit(main())
