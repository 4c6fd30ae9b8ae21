"""The dashboard headless (Streamlit's AppTest) on fixture warehouses: every page's figures against SQL computed here,
the empty states, the one-line error, and the label buttons storing feedback."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

APP = Path(__file__).resolve().parents[2] / "flows" / "dashboard" / "app.py"
T0 = datetime(2026, 11, 1, 8, 0, 0)
FEATURES = ["Time", "Amount", "V1", "V2"]
THRESHOLD = 0.8


@pytest.fixture
def app(settings, monkeypatch):
    """app(page) -> an AppTest of the dashboard on the test's warehouse, run once on that page."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SYNTHWATCH_DB", str(settings.db_path))

    def run(page: str = "alerts"):
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.query_params["page"] = page
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


def write_transactions(warehouse, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"tx{i:04d}" for i in range(n)], "Time": np.arange(n) * 10.0,
                          "Amount": rng.gamma(2.0, 40.0, n).round(2), "V1": rng.normal(0, 1, n),
                          "V2": rng.normal(0, 2, n)})
    from flows.bookkeeping import record_table

    with warehouse.transaction() as con:
        warehouse.write_frame(con, "tx", frame)
        record_table(con, "tx", kind="tabular", origin="ingested")
    return frame


def save_detector_files(folder: Path, frame: pd.DataFrame) -> dict:
    """A model folder as a detector leaves it: the encoder's training statistics and the training scores."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    stats = {c: [float(frame[c].mean()), float(frame[c].std(ddof=0))] for c in FEATURES}
    (folder / "model.json").write_text(json.dumps({"base_state": {"encoder": {"numeric": stats, "categories": {},
                                                                              "columns": FEATURES}}}))
    save_file({"train_scores": np.random.default_rng(1).beta(2, 5, 500)}, str(folder / "weights.safetensors"))
    return stats


def detector_row(settings, model_id: str, detector: str, **extra) -> dict:
    return {"model_id": model_id, "detector": detector, "table_name": "tx", "kind": "tabular",
            "path": str(settings.models_dir / model_id), "feature_columns": json.dumps(FEATURES),
            "key_column": "id", "label_column": None, "normal_value": None, "params": "{}", "n_train": 240,
            "n_validation": 60, "threshold": THRESHOLD, "threshold_source": "contamination", "score_mode": "default",
            "auroc": 0.91, "auprc": 0.42, "precision": 0.5, "recall": 0.6, "source_hash": "h", "run_id": "r",
            "created_at": T0, "made_by": "pipeline", **extra}


def scores_frame(model_id: str, keys: list[str], batch: str | None, seed: int, at: datetime) -> pd.DataFrame:
    score = np.random.default_rng(seed).beta(2, 3, len(keys)) * 1.3
    return pd.DataFrame({"model_id": model_id, "table_name": "tx", "item_key": keys, "score": score,
                         "threshold": THRESHOLD, "is_alert": score > THRESHOLD, "scored_at": at, "run_id": "r",
                         "batch_id": pd.array([batch] * len(keys), dtype="string")})


@pytest.fixture
def one_shot(warehouse, settings):
    """What the one-shot pipeline leaves: a table, a detector and its scores (no batch), nothing of monitoring."""
    from flows.bookkeeping import insert_row

    frame = write_transactions(warehouse)
    stats = save_detector_files(settings.models_dir / "tx-iforest-1", frame)
    with warehouse.transaction() as con:
        insert_row(con, "_detectors", detector_row(settings, "tx-iforest-1", "iforest"))
        warehouse.write_frame(con, "anomaly_scores", scores_frame("tx-iforest-1", list(frame["id"]), None, 2, T0),
                              mode="append", internal=True)
    return {"frame": frame, "stats": stats}


@pytest.fixture
def monitored(one_shot, warehouse, settings):
    """The one-shot warehouse plus three monitored batches, drift, events, labels, a challenger and a champion,
    a generator with a published and a quarantined table and their quality reports."""
    from flows.bookkeeping import insert_row, record_table

    frame = one_shot["frame"]
    batches = ["b01", "b02", "b03"]
    with warehouse.transaction() as con:
        insert_row(con, "_detectors", detector_row(settings, "tx-ganomaly-2", "ganomaly", auroc=0.87,
                                                   created_at=T0 + timedelta(hours=1), made_by="cli"))
        insert_row(con, "_champions", {"table_name": "tx", "model_id": "tx-iforest-1", "since": T0})
        insert_row(con, "_retrain_decisions", {
            "decided_at": T0 + timedelta(hours=2), "table_name": "tx", "champion": "tx-iforest-1",
            "challenger": "tx-ganomaly-2", "promoted": False, "reason": "challenger AUPRC 0.40 < champion 0.42",
            "labelled_rows": 12})
        for i, batch in enumerate(batches):
            arrived = T0 + timedelta(days=i + 1)
            keys = list(frame["id"].iloc[i * 100:(i + 1) * 100])
            scores = scores_frame("tx-iforest-1", keys, batch, 10 + i, arrived + timedelta(minutes=5))
            warehouse.write_frame(con, "anomaly_scores", scores, mode="append", internal=True)
            insert_row(con, "_batches", {"batch_id": batch, "table_name": "tx", "inbox": "inbox",
                                         "file_name": f"{batch}.csv", "sha256": "0" * 64, "rows": 100,
                                         "status": "ingested", "arrived_at": arrived, "ingested_at": arrived})
            q = np.quantile(scores["score"], [0.5, 0.9, 0.99])
            insert_row(con, "_monitor_batches", {
                "model_id": "tx-iforest-1", "table_name": "tx", "batch_id": batch, "rows": 100,
                "alerts": int(scores["is_alert"].sum()), "alert_rate": float(scores["is_alert"].mean()),
                "score_p50": q[0], "score_p90": q[1], "score_p99": q[2], "score_max": float(scores["score"].max()),
                "psi_score": [0.05, 0.12, 0.31][i], "ks_score": 0.1, "max_feature_psi": [0.08, 0.15, 0.44][i],
                "arrived_at": arrived, "scored_at": arrived + timedelta(minutes=5), "latency_seconds": 300.0})
            for feature, psi in (("__score__", [0.05, 0.12, 0.31][i]), ("V1", 0.02), ("V2", [0.08, 0.15, 0.44][i])):
                insert_row(con, "_drift", {"model_id": "tx-iforest-1", "batch_id": batch, "feature": feature,
                                           "psi": psi, "ks": 0.1, "computed_at": arrived + timedelta(minutes=5)})
        insert_row(con, "monitoring_events", {
            "event_id": "e1", "event_type": "drift", "table_name": "tx", "model_id": "tx-iforest-1",
            "batch_id": "b03", "message": "score PSI 0.31 above 0.2 in batch b03",
            "created_at": T0 + timedelta(days=3)})
        insert_row(con, "monitoring_events", {
            "event_id": "e2", "event_type": "gap", "table_name": "tx", "message": "no batch for 2 days",
            "created_at": T0 + timedelta(days=6)})
        insert_row(con, "monitoring_events", {
            "event_id": "e3", "event_type": "gap", "table_name": "other", "message": "no batch of other",
            "created_at": T0 + timedelta(days=6)})
        # Two labels in the newest batch's top alerts: one fraud, one normal.
        top = con.execute("SELECT item_key FROM main.anomaly_scores WHERE batch_id = 'b03' AND is_alert "
                          "ORDER BY score DESC LIMIT 2").fetchall()
        for (key,), label in zip(top, ("fraud", "normal")):
            insert_row(con, "_feedback", {"table_name": "tx", "item_key": key, "model_id": "tx-iforest-1",
                                          "label": label, "source": "cli", "created_at": T0 + timedelta(days=4)})
        # Generators: one published table (gate passed), one quarantined (gate failed).
        people = pd.DataFrame({"age": [25, 32, 47, 51, 38], "income": [">50K", "<=50K", ">50K", "<=50K", "<=50K"]})
        warehouse.write_frame(con, "people", people)
        record_table(con, "people", kind="tabular", origin="ingested")
        insert_row(con, "_models", {
            "model_id": "people_cart_1", "generator": "cart", "params": "{}", "source_table": "people",
            "source_hash": "h", "train_table": "_train_people_cart_1", "holdout_table": None, "train_rows": 4,
            "holdout_rows": 1, "seed": 0, "fit_seconds": 1.25, "path": str(settings.models_dir / "g"),
            "created_at": T0, "made_by": "pipeline"})
        reports = settings.reports_dir
        reports.mkdir(parents=True, exist_ok=True)
        for name, schema, passed, failing in (("people_synth", "main", True, []),
                                              ("people_bad", "quarantine", False, ["discriminator_auc"])):
            warehouse.write_frame(con, name, people.assign(age=people["age"] + 1), schema=schema)
            record_table(con, name, schema=schema, kind="tabular", origin="generated")
            insert_row(con, "_generations", {"table_name": name, "model_id": "people_cart_1", "rows": 5, "seed": 0,
                                             "published_schema": schema, "created_at": T0})
            (reports / f"{name}.html").write_text(f"<html><body><h1>Quality report {name}</h1></body></html>")
            checks = [{"name": "accuracy", "kind": "fidelity", "value": 0.93, "threshold": 0.85,
                       "direction": "min", "passed": True},
                      {"name": "discriminator_auc", "kind": "fidelity", "value": 0.91 if failing else 0.6,
                       "threshold": 0.8, "direction": "max", "passed": not failing}]
            insert_row(con, "_quality_reports", {
                "report_id": f"r-{name}", "table_name": name, "passed": passed, "failing": json.dumps(failing),
                "checks": json.dumps(checks), "thresholds": "{}", "source": "{}", "published_schema": schema,
                "report_path": str(reports / f"{name}.html"), "n_real": 5, "n_synthetic": 5, "seconds": 0.5,
                "created_at": T0 + timedelta(hours=1 if failing else 0)})
    return one_shot


# AppTest does not expose a read-only table's key: each table is found by the columns only it shows.
TABLE_COLUMNS = {"alert_table": {"rank", "item", "drivers"}, "monitor_table": {"batch", "p50"},
                 "monitor_events": {"when", "type", "message"}, "models_detectors": {"role", "AUROC"},
                 "models_champions": {"champion", "since"}, "models_decisions": {"challenger", "promoted"},
                 "models_generators": {"generator", "gates passed"}, "synthetic_tables": {"gate", "failing checks"},
                 "synthetic_checks": {"check", "bound"}}


def frames(at, key: str) -> pd.DataFrame:
    if key in ("synthetic_sample", "real_sample"):
        samples = [d.value for d in at.dataframe if "age" in d.value.columns]
        return samples[0 if key == "synthetic_sample" else 1]
    [table] = [d.value for d in at.dataframe if TABLE_COLUMNS[key] <= set(d.value.columns)]
    return table


def metric(at, label: str) -> str:
    [m] = [m for m in at.metric if m.label.startswith(label)]
    return m.value


def values(encoded) -> list:
    """A plotly trace's array: a list, or plotly's typed array ({"dtype", "bdata"}: base64 of the raw values)."""
    if isinstance(encoded, dict) and "bdata" in encoded:
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]).tolist()
    return list(encoded)


def plot_specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


# ------------------------------------------------------------------ error and empty states
def test_missing_warehouse_is_a_one_line_error(app, settings):
    at = app("alerts")
    assert len(at.error) == 1
    message = at.error[0].value
    assert message == f"no warehouse at {settings.db_path}: run `make demo` (or `synthwatch run`) first"
    assert not at.dataframe and not at.button


def test_every_page_says_what_to_run_on_a_warehouse_without_models(app, warehouse):
    write_transactions(warehouse)
    expected = {"alerts": ["No detector yet: run `make demo`"], "monitoring": ["No detector yet: run `make demo`"],
                "models": ["No detector yet: run `make demo`", "No generator yet: run `make demo`"],
                "synthetic": ["No generated table yet: run `make demo`"]}
    for page, starts in expected.items():
        at = app(page)
        infos = [i.value for i in at.info]
        for start in starts:
            assert any(i.startswith(start) for i in infos), (page, infos)
        assert not at.error


def test_one_shot_warehouse_every_page_renders_from_the_pipeline_tables_alone(app, one_shot, warehouse):
    with warehouse.read() as con:
        rows, alerts, p50, top = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_alert), quantile_cont(score, 0.5), max(score) "
            "FROM anomaly_scores").fetchall()[0]
    at = app("monitoring")
    assert any("has not scored batches" in i.value for i in at.info)
    assert metric(at, "Batches") == "1"
    assert metric(at, "Rows scored") == f"{rows:,}"
    assert metric(at, "Alerts") == f"{alerts:,}"
    assert metric(at, "Latest alert rate") == f"{100 * alerts / rows:.2f}%"
    batches = frames(at, "monitor_table")
    assert batches["batch"].tolist() == ["(one-shot)"]
    assert batches["p50"].iloc[0] == f"{p50:,.4g}" and batches["max"].iloc[0] == f"{top:,.4g}"
    assert batches["score PSI"].iloc[0] == "—"
    assert any("No monitoring events" in i.value for i in at.info)
    # The score distribution of the (one-shot) batch against the saved training scores: both sum to one.
    [dist] = [s for s in plot_specs(at) if "training reference" in json.dumps(s)]
    assert {t["name"] for t in dist["data"]} == {"latest batch (one-shot)", "training reference"}
    for trace in dist["data"]:
        assert sum(values(trace["y"])) == pytest.approx(1.0)

    at = app("models")
    assert frames(at, "models_detectors")["role"].tolist() == ["—"]
    assert any(i.value.startswith("No champion chosen yet") for i in at.info)
    assert any(i.value.startswith("No generator yet") for i in at.info)
    at = app("synthetic")
    assert [i.value for i in at.info][0].startswith("No generated table yet: run `make demo`")
    at = app("alerts")
    assert metric(at, "Alerts matching") == f"{alerts:,}"


# ------------------------------------------------------------------ alert queue
def test_alert_queue_ranks_open_alerts_newest_batch_first_with_the_items_fields(app, monitored, warehouse):
    with warehouse.read() as con:
        expected = con.execute("""
            SELECT s.item_key, s.score, coalesce(s.batch_id, '(one-shot)'), t.Amount, t.V1, t.V2, t.Time
            FROM anomaly_scores s LEFT JOIN _batches b USING (batch_id)
            LEFT JOIN _feedback f ON f.table_name = s.table_name AND f.item_key = s.item_key
            JOIN tx t ON t.id = s.item_key
            WHERE s.is_alert AND f.label IS NULL
            ORDER BY coalesce(b.arrived_at, s.scored_at) DESC, s.score DESC, s.item_key""").fetchall()
    at = app("alerts")
    assert metric(at, "Alerts matching") == f"{len(expected):,}"
    shown = frames(at, "alert_table")
    n = min(len(expected), 50)
    assert shown["item"].tolist() == [r[0] for r in expected[:n]]
    assert shown["batch"].tolist() == [r[2] for r in expected[:n]]
    assert shown["batch"].iloc[0] == "b03"  # the newest batch comes first
    assert shown["score"].tolist() == [f"{r[1]:,.4g}" for r in expected[:n]]
    assert shown["amount"].tolist() == [f"{r[3]:,.6g}" for r in expected[:n]]
    assert set(shown["label"]) == {"open"}
    # Drivers: the standardised deviation from the detector's training statistics, largest |z| first.
    key, _, _, amount, v1, v2, time = expected[0]
    stats = monitored["stats"]
    z = {c: (v - stats[c][0]) / stats[c][1] for c, v in (("Amount", amount), ("V1", v1), ("V2", v2),
                                                       ("Time", time))}
    top3 = sorted(z, key=lambda c: -abs(z[c]))[:3]
    assert shown["drivers"].iloc[0] == ", ".join(f"{c} {z[c]:+.1f}σ" for c in top3)
    assert at.markdown and any(m.value == f"#### Selected alert: item {key}" for m in at.markdown)
    [drivers] = [s for s in plot_specs(at) if "What drives this alert" in json.dumps(s)]
    assert values(drivers["data"][0]["y"])[-1] == top3[0]


def test_alert_queue_filters_by_batch_score_and_label(app, monitored, warehouse):
    with warehouse.read() as con:
        in_b02 = con.execute("SELECT count(*) FROM anomaly_scores s WHERE is_alert AND batch_id = 'b02' AND NOT "
                             "EXISTS (SELECT 1 FROM _feedback f WHERE f.item_key = s.item_key)").fetchone()[0]
        labelled = con.execute("SELECT item_key, label FROM _feedback ORDER BY item_key").fetchall()
        open_alerts = con.execute("SELECT count(*) FROM anomaly_scores s WHERE is_alert AND NOT EXISTS (SELECT 1 "
                                  "FROM _feedback f WHERE f.item_key = s.item_key)").fetchone()[0]
        above = con.execute("SELECT count(*) FROM anomaly_scores s WHERE is_alert AND score >= 1.0 AND NOT "
                            "EXISTS (SELECT 1 FROM _feedback f WHERE f.item_key = s.item_key)").fetchone()[0]
    at = app("alerts")
    at.selectbox(key="alerts_batch").set_value("b02").run()
    assert metric(at, "Alerts matching") == f"{in_b02:,}"
    assert set(frames(at, "alert_table")["batch"]) == {"b02"}
    at.selectbox(key="alerts_batch").set_value("all batches").run()
    at.radio(key="alerts_labelled").set_value("labelled").run()
    shown = frames(at, "alert_table")
    assert sorted(zip(shown["item"], shown["label"])) == labelled
    at.radio(key="alerts_labelled").set_value("open").run()
    [slider] = [s for s in at.slider if s.label == "Score range"]
    slider.set_value((1.0, slider.max)).run()
    assert metric(at, "Alerts matching") == f"{above:,}"
    # A new batch with a higher score widens the range: the filter resets rather than hide the new alert.
    new = scores_frame("tx-iforest-1", ["tx0007"], "b04", 0, T0 + timedelta(days=9)).assign(score=5.0, is_alert=True)
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "anomaly_scores", new, mode="append", internal=True)
    at.run()
    assert frames(at, "alert_table")[["item", "batch"]].iloc[0].tolist() == ["tx0007", "b04"]
    assert metric(at, "Alerts matching") == f"{open_alerts + 1:,}"


def test_label_buttons_store_feedback_and_show_it_at_once(app, monitored, warehouse):
    at = app("alerts")
    top = frames(at, "alert_table")["item"].iloc[0]
    at.button(key="label_fraud").click().run()
    assert not at.exception
    with warehouse.read() as con:
        stored = con.execute("SELECT table_name, model_id, label, source FROM _feedback WHERE item_key = ?",
                             [top]).fetchall()
    assert stored == [("tx", "tx-iforest-1", "fraud", "dashboard")]
    assert [s.value for s in at.success] == [f"Labelled item {top} of tx as fraud."]
    assert top not in frames(at, "alert_table")["item"].tolist()  # gone from the open queue at once
    # Relabelling the next alert normal, then fraud again through the 'labelled' view: one row per item, latest wins.
    second = frames(at, "alert_table")["item"].iloc[0]
    at.button(key="label_normal").click().run()
    with warehouse.read() as con:
        assert con.execute("SELECT label FROM _feedback WHERE item_key = ?", [second]).fetchall() == [("normal",)]
        assert con.execute("SELECT count(*) FROM _feedback").fetchone()[0] == 4
    assert metric(at, "Labels given") == "4"


# ------------------------------------------------------------------ monitoring
def test_monitoring_shows_batches_precision_psi_and_events_from_the_warehouse(app, monitored, warehouse):
    with warehouse.read() as con:
        expected = con.execute("""
            SELECT batch_id, rows, alerts, alert_rate, score_p50, score_p99, psi_score, max_feature_psi
            FROM _monitor_batches WHERE model_id = 'tx-iforest-1' ORDER BY arrived_at DESC""").fetchall()
        p_at_10 = con.execute("""
            WITH top AS (SELECT table_name, item_key FROM anomaly_scores WHERE model_id = 'tx-iforest-1'
                         AND batch_id = 'b03' ORDER BY score DESC LIMIT 10)
            SELECT count(*) FILTER (WHERE f.label = 'fraud') / count(f.label) FROM top
            LEFT JOIN _feedback f USING (table_name, item_key)""").fetchone()[0]
    at = app("monitoring")
    assert not any("has not scored batches" in i.value for i in at.info)
    table = frames(at, "monitor_table")
    assert table["batch"].tolist() == [r[0] for r in expected]
    assert table["rows"].tolist() == [f"{r[1]:,}" for r in expected]
    assert table["alerts"].tolist() == [f"{r[2]:,}" for r in expected]
    assert table["alert rate"].tolist() == [f"{100 * r[3]:.2f}%" for r in expected]
    assert table["p50"].tolist() == [f"{r[4]:,.4g}" for r in expected]
    assert table["score PSI"].tolist() == [f"{r[6]:,.3g}" for r in expected]
    assert table["precision@10"].iloc[0] == f"{100 * p_at_10:.0f}%" == "50%"
    assert table["precision@10"].iloc[1] == "—"  # nothing labelled in b02
    assert metric(at, "Batches") == "3"
    assert metric(at, "Rows scored") == "300"
    assert metric(at, "Latest precision@10") == "50%"
    specs = {s["layout"]["title"]["text"]: s for s in plot_specs(at)}
    psi = specs["Drift (PSI) per batch"]
    assert [shape["y0"] for shape in psi["layout"]["shapes"]] == [0.2]
    assert {t["name"] for t in psi["data"]} == {"score PSI", "largest feature PSI"}
    assert "Feature PSI per batch" in specs and "Score quantiles per batch" in specs
    events = frames(at, "monitor_events")
    # This detector's events and its table's gaps, newest first; another table's events are not its.
    assert events["message"].tolist() == ["no batch for 2 days", "score PSI 0.31 above 0.2 in batch b03"]
    assert events["type"].tolist() == ["gap", "drift"]
    # Another k recomputes precision from the labels.
    at.selectbox(key="monitor_k").set_value(100).run()
    assert frames(at, "monitor_table")["precision@100"].iloc[0] == "50%"


# ------------------------------------------------------------------ models and synthetic data
def test_models_page_shows_champion_challengers_validation_and_generators(app, monitored):
    at = app("models")
    detectors = frames(at, "models_detectors")
    assert detectors[["detector", "role", "AUROC", "trained on"]].values.tolist() == [
        ["tx-ganomaly-2", "challenger", "0.87", "240 rows"], ["tx-iforest-1", "champion", "0.91", "240 rows"]]
    assert frames(at, "models_champions")["champion"].tolist() == ["tx-iforest-1"]
    decisions = frames(at, "models_decisions")
    assert decisions[["challenger", "promoted"]].values.tolist() == [["tx-ganomaly-2", "no"]]
    generators = frames(at, "models_generators")
    assert generators[["model", "trained on", "generated tables", "gates passed", "gates failed"]].values.tolist() \
        == [["people_cart_1", "people", "2", "1", "1"]]
    # Its validation figures: the latest gated table's checks (people_bad, gated an hour after people_synth).
    assert generators[["accuracy", "discriminator AUC"]].values.tolist() == [["0.93", "0.91"]]
    assert generators["fit time"].tolist() == ["1.2 s"] or generators["fit time"].tolist() == ["1.3 s"]
    [validation] = [s for s in plot_specs(at) if s["layout"]["title"]["text"] == "Held-out validation figures"]
    auroc = [t for t in validation["data"] if t["name"] == "auroc"][0]
    assert dict(zip(values(auroc["x"]), values(auroc["y"]))) == {"tx-ganomaly-2": 0.87, "tx-iforest-1": 0.91}


def test_synthetic_page_shows_gate_verdicts_failing_checks_report_and_samples(app, monitored, settings):
    at = app("synthetic")
    overview = frames(at, "synthetic_tables").set_index("table")
    assert overview.loc["people_synth", ["schema", "gate", "failing checks"]].tolist() == ["main", "passed", "—"]
    assert overview.loc["people_bad", ["schema", "gate", "failing checks"]].tolist() == \
        ["quarantine", "FAILED", "discriminator_auc"]
    at.selectbox(key="synthetic_table").set_value("people_bad").run()
    assert [e.value for e in at.error] == ["people_bad: the quality gate failed on discriminator_auc; the table is "
                                           "kept in schema quarantine."]
    checks = frames(at, "synthetic_checks")
    assert checks[checks["result"] == "FAIL"]["check"].tolist() == ["discriminator_auc"]
    [report] = [b for b in at.download_button if b.key == "synthetic_report"]
    assert report.label == "Open the HTML quality report"
    assert "Quality report people_bad" in (settings.reports_dir / "people_bad.html").read_text()
    at.toggle(key="synthetic_report_inline").set_value(True).run()
    assert not at.exception
    synthetic, real = frames(at, "synthetic_sample"), frames(at, "real_sample")
    assert sorted(synthetic["age"]) == [26, 33, 39, 48, 52] and sorted(real["age"]) == [25, 32, 38, 47, 51]


def test_a_report_path_outside_the_data_dir_is_never_read(monitored, settings, tmp_path):
    from flows.dashboard.data import report_html

    outside = tmp_path / "secret.html"
    outside.write_text("secret")
    assert report_html(str(outside), settings.data_dir) is None
    assert "Quality report" in report_html(str(settings.reports_dir / "people_synth.html"), settings.data_dir)


# ------------------------------------------------------------------ the command
def test_dashboard_command_refuses_a_remote_host_without_the_flag_and_a_missing_warehouse(cli, settings):
    code, out, err = cli(["dashboard", "--host", "0.0.0.0"])
    assert code == 2 and err.strip().splitlines() == [
        "error: --host 0.0.0.0 lets other machines reach the dashboard, which has no login; pass --allow-remote "
        "as well if that is what you want"]
    code, out, err = cli(["dashboard"])
    assert code == 2 and err.strip() == f"error: no warehouse at {settings.db_path}: run make demo (or synthwatch " \
                                        "run) first"
    assert not settings.db_path.exists()


def test_dashboard_command_starts_without_heavy_imports(settings):
    """The command itself imports neither Streamlit nor pandas nor Prefect: the server subprocess does."""
    import subprocess
    import sys

    probe = ("import json, sys\nfrom flows.cli import main\ncode = main(sys.argv[1:])\n"
             "print('PROBE ' + json.dumps({'code': code, 'heavy': sorted(n for n in sys.modules if n.split('.')[0] "
             "in ('streamlit', 'pandas', 'prefect', 'plotly', 'torch'))}))")
    done = subprocess.run([sys.executable, "-c", probe, "dashboard", "--db", str(settings.db_path)],
                          capture_output=True, text=True, timeout=120, cwd=APP.parents[2],
                          env={**os.environ, "PYTHONPATH": str(APP.parents[2])})
    result = json.loads(done.stdout.split("PROBE ")[-1])
    assert result == {"code": 2, "heavy": []}, done.stderr
    assert "no warehouse at" in done.stderr


def test_dashboard_command_serves_loopback_headless_without_usage_stats(settings):
    from flows.commands.dashboard import dashboard_env, is_loopback, streamlit_command

    command = streamlit_command("127.0.0.1", 8765)
    options = dict(zip(command[5::2], command[6::2]))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("flows/dashboard/app.py")
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8765"
    assert options["--server.headless"] == "true" and options["--browser.gatherUsageStats"] == "false"
    env = dashboard_env(settings)
    assert env["SYNTHWATCH_DB"] == str(settings.db_path) and env["HOME"] == str(settings.data_dir / "dashboard")
    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "192.168.1.5")] == \
        [True, True, True, False, False]


def test_synthetic_images_show_as_a_grid_and_series_as_lines(app, warehouse, settings):
    from flows.bookkeeping import insert_row, record_table
    from flows.readers import images_to_frame

    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 1), dtype=np.uint8)
    frame, _ = images_to_frame(images, ["a", "b"] * 3, [f"i{i}" for i in range(6)])
    series = pd.DataFrame({"sensor": ["s1"] * 5 + ["s2"] * 5, "t": list(range(5)) * 2,
                           "value": np.arange(10, dtype=float)})
    with warehouse.transaction() as con:
        for name, table, kind, detail in (("imgs", frame, "image", {}),
                                          ("waves", series, "timeseries", {"id_column": "sensor",
                                                                           "time_column": "t"})):
            warehouse.write_frame(con, name, table)
            record_table(con, name, kind=kind, origin="ingested", detail=detail)
            warehouse.write_frame(con, f"{name}_synth", table)
            record_table(con, f"{name}_synth", kind=kind, origin="generated", detail=detail)
            insert_row(con, "_models", {
                "model_id": f"{name}_m", "generator": "g", "params": "{}", "source_table": name,
                "source_hash": "h", "train_table": "t", "train_rows": 6, "holdout_rows": 0, "seed": 0,
                "fit_seconds": 1.0, "path": "p", "created_at": T0})
            insert_row(con, "_generations", {"table_name": f"{name}_synth", "model_id": f"{name}_m", "rows": 6,
                                             "published_schema": "main", "created_at": T0})
    at = app("synthetic")
    at.selectbox(key="synthetic_table").set_value("imgs_synth").run()
    assert not at.exception
    assert len(at.image) == 2  # synthetic grid beside the real one
    assert any("no quality report recorded" in w.value for w in at.warning)
    at.selectbox(key="synthetic_table").set_value("waves_synth").run()
    lines = [s for s in plot_specs(at) if s["layout"]["title"]["text"] == "value over time"]
    assert len(lines) == 2 and {t["name"] for t in lines[0]["data"]} == {"s1", "s2"}


def test_labelling_a_picked_alert_labels_that_one_and_the_pick_returns_to_the_top(app, monitored, warehouse):
    at = app("alerts")
    queue = frames(at, "alert_table")
    [picker] = [s for s in at.selectbox if s.label == "Alert"]
    third = picker.options[2]
    assert third.startswith("#3 · item " + queue["item"].iloc[2] + " ·")
    picker.select_index(2).run()
    assert any(m.value == f"#### Selected alert: item {queue['item'].iloc[2]}" for m in at.markdown)
    at.button(key="label_normal").click().run()
    with warehouse.read() as con:
        assert con.execute("SELECT label, source FROM _feedback WHERE item_key = ?",
                           [queue["item"].iloc[2]]).fetchall() == [("normal", "dashboard")]
    assert any(m.value == f"#### Selected alert: item {queue['item'].iloc[0]}" for m in at.markdown)


def test_a_port_in_use_is_a_one_line_error(cli, one_shot):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, out, err = cli(["dashboard", "--port", str(port)])
    assert code == 2 and err.strip().splitlines() == [
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use; choose another --port (or leave it out "
        "for a free one)"]


def test_a_warehouse_held_by_a_writer_is_a_one_line_error_not_a_traceback(app, one_shot, settings, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("SYNTHWATCH_BUSY_TIMEOUT", "0.5")
    hold = ("import sys, time\nfrom flows.warehouse import Warehouse\n"
            "with Warehouse(sys.argv[1]).transaction():\n    print('held', flush=True)\n    time.sleep(30)\n")
    writer = subprocess.Popen([sys.executable, "-c", hold, str(settings.db_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(APP.parents[2])})
    try:
        assert writer.stdout.readline().strip() == "held"
        at = app("alerts")
        assert [e.value for e in at.error] == [
            f"warehouse {settings.db_path} is busy: another synthwatch process is writing; retry when it finishes "
            "(or raise SYNTHWATCH_BUSY_TIMEOUT)"]
    finally:
        writer.kill()
        writer.wait()
    at.run()  # the writer is gone: the next rerun reads again
    assert not at.error and metric(at, "Alerts matching") != ""


def test_inbox_items_keyed_by_batch_and_position_show_their_own_fields(app, warehouse, settings):
    """The monitor flow keys an inbox table's rows `<batch id>:<position in its batch>`: the queue finds them."""
    from flows.bookkeeping import insert_row, record_table

    rows = pd.DataFrame({"Time": [1.0, 2.0, 3.0, 4.0, 5.0], "Amount": [10.5, 20.5, 999.5, 40.5, 55.5],
                         "V1": [0.1, 0.2, 9.0, 0.4, 0.5], "V2": [0.0] * 5,
                         "batch_id": ["bA", "bA", "bB", "bB", "bB"]})
    scores = pd.DataFrame({"model_id": "inbox-1", "table_name": "transactions",
                           "item_key": ["bA:0", "bA:1", "bB:0", "bB:1", "bB:2"],
                           "score": [0.1, 0.2, 0.95, 0.3, 0.85], "threshold": THRESHOLD,
                           "is_alert": [False, False, True, False, True], "scored_at": T0, "run_id": "r",
                           "batch_id": ["bA", "bA", "bB", "bB", "bB"]})
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "transactions", rows)
        record_table(con, "transactions", kind="tabular", origin="ingested", detail={"batch_column": "batch_id"})
        insert_row(con, "_detectors", {**detector_row(settings, "inbox-1", "iforest"), "key_column": None,
                                       "table_name": "transactions"})
        warehouse.write_frame(con, "anomaly_scores", scores, mode="append", internal=True)
    at = app("alerts")
    shown = frames(at, "alert_table")
    assert shown[["item", "amount"]].values.tolist() == [["bB:0", "999.5"], ["bB:2", "55.5"]]
