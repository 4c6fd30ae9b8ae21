"""The synthwatch dashboard (Streamlit): alert queue, monitoring, models, synthetic data.

Started by `synthwatch dashboard`, which passes the warehouse through SYNTHWATCH_DB / SYNTHWATCH_DATA_DIR. Every
figure comes from `flows.dashboard.data` (one short read-only connection per question); the only write is a label,
stored by `flows.feedback.record_feedback` in one short transaction.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from datetime import datetime

import pandas as pd
import streamlit as st

from flows.config import Settings
from flows.dashboard import data
from flows.errors import SynthwatchError

PAGES = {"alerts": "Alert queue", "monitoring": "Monitoring", "models": "Models", "synthetic": "Synthetic data"}
QUEUE_SIZE = 50
# The gate's checks shown as a generator's validation figures (see quality/ for their definitions).
GENERATOR_FIGURES = {"accuracy": "accuracy", "discriminator AUC": "discriminator_auc", "DCR share": "dcr_share",
                     "MIA AUROC": "mia_auroc"}
CACHE_SECONDS = 30  # only for files and figures that cannot change under a running pipeline's feet quickly


# ------------------------------------------------------------------ formatting for people
def fmt_int(value) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{int(value):,}"


def fmt_num(value, digits: int = 4) -> str:
    """A measurement for people: whole numbers with thousands separators, large ones to the cent, small ones to
    `digits` significant digits, never in exponent notation below a million."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 10 ** digits:
        return f"{number:,.0f}" if abs(number) >= 1e6 else f"{number:,.2f}"
    return f"{number:,.{digits}g}"


def fmt_pct(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    return f"{100 * float(value):.{digits}f}%"


def fmt_time(value) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, str):
        return value
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")


def settings() -> Settings:
    return Settings.from_env()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def cached_reference(db: str, record_json: str, models_dir: str) -> dict:
    return data.feature_reference(db, json.loads(record_json), models_dir)


def record_json(record: dict) -> str:
    return json.dumps(record, default=str, sort_keys=True)


def plotly(fig, key: str) -> None:
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), height=340, legend_title_text="",
                      legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0))
    if fig.layout.xaxis.title.text in (None, "batch_id") and key.startswith("monitor_"):
        fig.update_xaxes(title_text="batch")
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


# ------------------------------------------------------------------ alert queue
def label_alert(s: Settings, row: dict, label: str) -> None:
    from flows.feedback import record_feedback

    try:
        stored = record_feedback(s, item_key=row["item_key"], label=label, model_id=row["model_id"],
                                 table=row["table_name"], source="dashboard")
    except SynthwatchError as exc:
        st.session_state["flash"] = ("error", str(exc).splitlines()[0])
        return
    st.session_state["flash"] = ("success", f"Labelled item {stored['item_key']} of {stored['table_name']} as "
                                            f"{stored['label']}.")
    st.cache_data.clear()


def page_alerts(s: Settings, status: dict) -> None:
    st.header("Alert queue")
    flash = st.session_state.pop("flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])
    if not status["detectors"]:
        st.info("No detector yet: run `make demo` (or `synthwatch detect train`, then `synthwatch detect score`).")
        return
    if not status["scores"]:
        st.info("No scored items yet: run `synthwatch detect score --model <id> --table <table>` (or `make demo`).")
        return
    db = str(s.db_path)
    detectors = data.detectors(db)
    scored = detectors[detectors["scored"] > 0]
    choices = ["all detectors", *scored["model_id"]]
    f1, f2, f3 = st.columns([2, 2, 1.6])
    model = f1.selectbox("Detector", choices, key="alerts_model",
                         format_func=lambda m: m if m == "all detectors" else
                         f"{m} ({scored.set_index('model_id').loc[m, 'table_name']})")
    model_id = None if model == "all detectors" else model
    batch_frame = data.batches(db, model_id)
    batch_choices = ["all batches", *batch_frame["batch_id"]]
    batch = f2.selectbox("Batch (newest first)", batch_choices, key="alerts_batch")
    labelled = f3.radio("Labels", data.LABEL_FILTERS, key="alerts_labelled", horizontal=True,
                        format_func={"open": "open", "labelled": "labelled", "all": "all"}.get)
    bounds = data.score_range(db, model_id)
    score_min = score_max = None
    if bounds and bounds[1] > bounds[0]:
        # Keyed by the range itself: a new batch that widens it resets the filter instead of hiding its alerts.
        chosen = st.slider("Score range", min_value=bounds[0], max_value=bounds[1], value=bounds,
                           key=f"alerts_scores_{model_id}_{bounds[0]:.6g}_{bounds[1]:.6g}", format="%.4g")
        if tuple(chosen) != tuple(bounds):
            score_min, score_max = chosen
    queue, total = data.alert_queue(db, model_id=model_id, batch_id=None if batch == "all batches" else batch,
                                    score_min=score_min, score_max=score_max, labelled=labelled, limit=QUEUE_SIZE)
    m1, m2, m3 = st.columns(3)
    m1.metric("Alerts matching", fmt_int(total))
    m2.metric("Alerts in all", fmt_int(status["alerts"]))
    m3.metric("Labels given", fmt_int(status["feedback"]))
    if queue.empty:
        if labelled == "open" and status["alerts"]:
            st.info("No open alert matches these filters: every alert here is labelled, or the filters leave none "
                    "(choose 'all' labels or widen the score range).")
        else:
            st.info("No alert matches these filters.")
        return
    records = {m: data.detector_record(db, m) for m in queue["model_id"].unique()}
    shown, details = alert_rows(s, queue, records)
    st.caption(f"Showing the first {fmt_int(len(queue))} of {fmt_int(total)}: newest batch first, highest score "
               "first within a batch. Drivers: the features furthest from the detector's training data "
               "(standardised deviation, σ).")
    st.dataframe(shown, hide_index=True, key="alert_table", height=min(38 + 35 * len(shown), 420))

    st.subheader("Label an alert")
    # Alerts are told apart by what they are, not their rank: once one is labelled the pick falls back to the top.
    ids = [f"{m}|{t}|{b}|{k}" for m, t, b, k in zip(queue["model_id"], queue["table_name"], queue["batch_id"],
                                                     queue["item_key"])]
    pick = st.selectbox("Alert", ids, format_func=lambda i: (
        f"#{ids.index(i) + 1} · item {queue.iloc[ids.index(i)]['item_key']} · score "
        f"{fmt_num(queue.iloc[ids.index(i)]['score'])} · {queue.iloc[ids.index(i)]['model_id']}"))
    row = queue.iloc[ids.index(pick)].to_dict()
    st.markdown(f"#### Selected alert: item {row['item_key']}")
    st.caption(f"table {row['table_name']} · detector {row['model_id']} · batch {row['batch_id']} · score "
               f"{fmt_num(row['score'])} (threshold {fmt_num(row['threshold'])}) · "
               f"label {row['label'] or 'none yet'}")
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Fraud", key="label_fraud", type="primary", icon=":material/report:"):
        label_alert(s, row, "fraud")
        st.rerun()
    if b2.button("Normal", key="label_normal", icon=":material/check_circle:"):
        label_alert(s, row, "normal")
        st.rerun()
    fields, contrib = details.get((row["model_id"], str(row["item_key"])), (None, None))
    left, right = st.columns([1, 2])
    if fields is not None:
        shown = [fmt_num(v) if isinstance(v, numbers.Number) and not isinstance(v, bool) else str(v)
                 for v in fields.values]  # numpy scalars are numbers too
        left.dataframe(pd.DataFrame({"field": fields.index.astype(str), "value": shown}),
                       hide_index=True, height=300, key="alert_fields")
    else:
        left.info("The item's own fields are shown for tabular tables whose rows are still in the warehouse.")
    if contrib is not None and not contrib.empty:
        import plotly.express as px

        top = contrib.head(12).iloc[::-1]
        fig = px.bar(x=top.values, y=top.index, orientation="h", labels={"x": "deviation from training (σ)",
                                                                         "y": "feature"},
                     title="What drives this alert", color=top.abs().values, color_continuous_scale="Reds")
        fig.update_coloraxes(showscale=False)
        with right:
            plotly(fig, "alert_drivers")


def alert_rows(s: Settings, queue: pd.DataFrame, records: dict) -> tuple[pd.DataFrame, dict]:
    """The queue as people read it, plus each alert's own fields and feature contributions (one query per detector
    and table for all the queue's items)."""
    items: dict = {}
    for (model_id, table), group in queue.groupby(["model_id", "table_name"], sort=False):
        record = records.get(model_id)
        if record:
            reference = cached_reference(str(s.db_path), record_json(record), str(s.models_dir))
            items[(model_id, table)] = (data.item_fields(str(s.db_path), record, table, group["item_key"].tolist()),
                                        reference)
    details: dict = {}
    extra: dict[str, list] = {"amount": [], "time": []}
    drivers: list[str] = []
    for _, row in queue.iterrows():
        fields = contrib = None
        found, reference = items.get((row["model_id"], row["table_name"]), (pd.DataFrame(), {}))
        key = str(row["item_key"])
        if key in found.index:
            fields = found.loc[key]
            contrib = data.contributions(fields, reference)
        details[(row["model_id"], key)] = (fields, contrib)
        for column in extra:
            match = [c for c in fields.index if str(c).lower() == column] if fields is not None else []
            extra[column].append(fields[match[0]] if match else None)
        drivers.append(", ".join(f"{c} {z:+.1f}σ" for c, z in contrib.head(3).items())
                       if contrib is not None and not contrib.empty else "")
    shown = pd.DataFrame({
        "rank": range(1, len(queue) + 1), "item": queue["item_key"].astype(str),
        "score": queue["score"].map(fmt_num), "threshold": queue["threshold"].map(fmt_num),
        "amount": [fmt_num(v, 6) if v is not None else "—" for v in extra["amount"]],
        "time": [fmt_num(v, 8) if v is not None else "—" for v in extra["time"]],
        "drivers": drivers, "batch": queue["batch_id"], "arrived": queue["arrived_at"].map(fmt_time),
        "detector": queue["model_id"], "label": queue["label"].fillna("open")})
    return shown, details


# ------------------------------------------------------------------ monitoring
def page_monitoring(s: Settings, status: dict) -> None:
    import plotly.express as px
    import plotly.graph_objects as go

    st.header("Monitoring")
    if not status["detectors"]:
        st.info("No detector yet: run `make demo` (or `synthwatch detect train`).")
        return
    db = str(s.db_path)
    detectors = data.detectors(db)
    scored = detectors[detectors["scored"] > 0]
    if scored.empty:
        st.info("No detector has scored anything yet: run `synthwatch detect score` (or `make demo`).")
        return
    order = scored.sort_values(["champion", "created_at"], ascending=False)
    c1, c2 = st.columns([3, 1])
    model_id = c1.selectbox("Detector", list(order["model_id"]), key="monitor_model",
                            format_func=lambda m: f"{m} ({order.set_index('model_id').loc[m, 'table_name']})"
                            + (" · champion" if order.set_index("model_id").loc[m, "champion"] else ""))
    k = c2.selectbox("Precision at k", [10, 50, 100], key="monitor_k")
    frame, source = data.monitor_batches(db, model_id, k=k)
    if source == "anomaly_scores":
        st.info("The monitoring flow has not scored batches for this detector yet: the figures below come from its "
                "one-shot scores (PSI and drift appear once batches are monitored).")
    latest = frame.iloc[-1]
    m = st.columns(5)
    m[0].metric("Batches", fmt_int(len(frame)))
    m[1].metric("Rows scored", fmt_int(frame["rows"].sum()))
    m[2].metric("Alerts", fmt_int(frame["alerts"].sum()))
    m[3].metric("Latest alert rate", fmt_pct(latest["alert_rate"]))
    m[4].metric(f"Latest precision@{k}", fmt_pct(latest["precision_at_k"], 0),
                help="Of the batch's k highest-scored items that an analyst labelled, the share labelled fraud.")
    x = frame["batch_id"]
    left, right = st.columns(2)
    with left:
        fig = go.Figure()
        fig.add_bar(x=x, y=frame["rows"], name="rows", marker_color="#9ecae1")
        fig.add_scatter(x=x, y=frame["alert_rate"] * 100, name="alert rate (%)", yaxis="y2", mode="lines+markers",
                        line_color="#d62728")
        fig.update_layout(title="Rows and alert rate per batch", yaxis_title="rows",
                          yaxis2=dict(title="alert rate (%)", overlaying="y", side="right", rangemode="tozero"))
        plotly(fig, "monitor_rows")
    with right:
        long = frame.melt(id_vars="batch_id", value_vars=["score_p50", "score_p90", "score_p99", "score_max"],
                          var_name="quantile", value_name="score")
        long["quantile"] = long["quantile"].str.replace("score_", "")
        fig = px.line(long, x="batch_id", y="score", color="quantile", markers=True, title="Score quantiles per batch")
        plotly(fig, "monitor_quantiles")
    left, right = st.columns(2)
    with left:
        psi = frame[["batch_id", "psi_score", "max_feature_psi"]].rename(
            columns={"psi_score": "score PSI", "max_feature_psi": "largest feature PSI"})
        long = psi.melt(id_vars="batch_id", var_name="series", value_name="PSI").dropna()
        if long.empty:
            st.info("No PSI yet: it is computed when the monitoring flow scores a batch against the training data.")
        else:
            fig = px.line(long, x="batch_id", y="PSI", color="series", markers=True, title="Drift (PSI) per batch")
            fig.add_hline(y=data.PSI_THRESHOLD, line_dash="dash", line_color="#d62728",
                          annotation_text=f"drift threshold {data.PSI_THRESHOLD}")
            plotly(fig, "monitor_psi")
    with right:
        precision = frame.dropna(subset=["precision_at_k"])
        if precision.empty:
            st.info(f"No precision@{k} yet: label alerts in the alert queue.")
        else:
            fig = px.line(precision, x="batch_id", y="precision_at_k", markers=True, title=f"Precision@{k} per batch",
                          hover_data=["labelled_at_k", "fraud_at_k"])
            fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
            plotly(fig, "monitor_precision")
    drift = data.feature_drift(db, model_id)
    features = drift[drift["feature"] != "__score__"]
    if not features.empty:
        pivot = features.pivot_table(index="feature", columns="batch_id", values="psi", sort=False)
        fig = px.imshow(pivot, aspect="auto", color_continuous_scale="Reds", zmin=0,
                        zmax=max(float(pivot.max().max()), data.PSI_THRESHOLD * 2),
                        labels={"color": "PSI", "x": "batch"}, title="Feature PSI per batch")
        plotly(fig, "monitor_feature_psi")
    record = data.detector_record(db, model_id)
    hist = data.score_histogram(db, record, s.models_dir)
    if not hist.empty:
        fig = px.line(hist, x="bin_mid", y="share", color="source", line_shape="hvh",
                      title="Score distribution: latest batch against the training reference",
                      labels={"bin_mid": "score", "share": "share of items"})
        fig.add_vline(x=float(record["threshold"]), line_dash="dash", line_color="#d62728",
                      annotation_text="alert threshold")
        if (hist["source"] == "training reference").sum() == 0:
            st.caption("The detector's training scores are not readable here (its model folder is missing): only "
                       "the latest batch is drawn.")
        plotly(fig, "monitor_distribution")
    st.subheader("Batches")
    table = pd.DataFrame({
        "batch": frame["batch_id"], "arrived": frame["arrived_at"].map(fmt_time),
        "scored": frame["scored_at"].map(fmt_time), "rows": frame["rows"].map(fmt_int),
        "alerts": frame["alerts"].map(fmt_int), "alert rate": frame["alert_rate"].map(fmt_pct),
        "p50": frame["score_p50"].map(fmt_num), "p90": frame["score_p90"].map(fmt_num),
        "p99": frame["score_p99"].map(fmt_num), "max": frame["score_max"].map(fmt_num),
        "score PSI": frame["psi_score"].map(lambda v: fmt_num(v, 3)),
        "max feature PSI": frame["max_feature_psi"].map(lambda v: fmt_num(v, 3)),
        f"precision@{k}": frame["precision_at_k"].map(lambda v: fmt_pct(v, 0)),
        "labelled in top k": frame["labelled_at_k"].map(fmt_int),
        "latency": frame["latency_seconds"].map(lambda v: "—" if pd.isna(v) else f"{v:,.1f} s")})
    st.dataframe(table.iloc[::-1], hide_index=True, key="monitor_table")
    st.subheader("Monitoring events")
    ev = data.events(db, model_id, record["table_name"])
    if ev.empty:
        st.info("No monitoring events: no drift, alert-rate jump or gap has been recorded.")
    else:
        st.dataframe(pd.DataFrame({"when": ev["created_at"].map(fmt_time), "type": ev["event_type"],
                                   "table": ev["table_name"], "batch": ev["batch_id"].fillna("—"),
                                   "message": ev["message"]}), hide_index=True, key="monitor_events")


# ------------------------------------------------------------------ models
def page_models(s: Settings, status: dict) -> None:
    import plotly.express as px

    st.header("Models")
    db = str(s.db_path)
    st.subheader("Detectors")
    detectors = data.detectors(db)
    if detectors.empty:
        st.info("No detector yet: run `make demo` (or `synthwatch detect train --table <table> --detector iforest`).")
    else:
        champions = data.champions(db)
        has_champion = set(champions["table_name"].str.lower()) if not champions.empty else set()
        role = ["champion" if c else ("challenger" if t.lower() in has_champion else "—")
                for c, t in zip(detectors["champion"], detectors["table_name"])]
        st.dataframe(pd.DataFrame({
            "detector": detectors["model_id"], "model": detectors["detector"], "table": detectors["table_name"],
            "role": role, "score mode": detectors["score_mode"], "threshold": detectors["threshold"].map(fmt_num),
            "trained on": detectors["n_train"].map(lambda n: f"{fmt_int(n)} rows"),
            "AUROC": detectors["auroc"].map(lambda v: fmt_num(v, 3)),
            "AUPRC": detectors["auprc"].map(lambda v: fmt_num(v, 3)),
            "precision": detectors["precision"].map(lambda v: fmt_num(v, 3)),
            "recall": detectors["recall"].map(lambda v: fmt_num(v, 3)),
            "scored": detectors["scored"].map(fmt_int), "alerts": detectors["alerts"].map(fmt_int),
            "trained": detectors["created_at"].map(fmt_time), "made by": detectors["made_by"]}),
            hide_index=True, key="models_detectors")
        st.caption("Validation figures are measured on held-out rows the detector's threshold was not chosen on.")
        metrics = detectors.melt(id_vars="model_id", value_vars=["auroc", "auprc", "precision", "recall"],
                                 var_name="figure", value_name="value").dropna()
        if not metrics.empty:
            fig = px.bar(metrics, x="model_id", y="value", color="figure", barmode="group",
                         title="Held-out validation figures", labels={"model_id": "detector"})
            fig.update_yaxes(range=[0, 1])
            plotly(fig, "models_validation")
        decisions = data.retrain_decisions(db)
        st.markdown("**Champion and challengers**")
        if champions.empty:
            st.info("No champion chosen yet: the monitoring flow picks one per table when it compares a retrained "
                    "challenger with the detector in place.")
        else:
            st.dataframe(pd.DataFrame({"table": champions["table_name"], "champion": champions["model_id"],
                                       "since": champions["since"].map(fmt_time)}), hide_index=True,
                         key="models_champions")
        if not decisions.empty:
            st.dataframe(pd.DataFrame({
                "when": decisions["decided_at"].map(fmt_time), "table": decisions["table_name"],
                "champion": decisions["champion"].fillna("—"), "challenger": decisions["challenger"],
                "promoted": decisions["promoted"].map({True: "yes", False: "no"}), "reason": decisions["reason"],
                "labelled rows": decisions["labelled_rows"].map(fmt_int)}), hide_index=True,
                key="models_decisions")
    st.subheader("Generators")
    gens = data.generators(db)
    if gens.empty:
        st.info("No generator yet: run `make demo` (or `synthwatch train --table <table> --generator cart`).")
    else:
        # A generator's validation figures are its latest gated table's fidelity and privacy checks.
        gated = data.synthetic_tables(db)
        gated = gated[gated["passed"].notna()].sort_values("gated_at", ascending=False).drop_duplicates("model_id")
        figures = {m: {c.get("name"): c.get("value") for c in checks}
                   for m, checks in zip(gated["model_id"], gated["checks"])}
        shown = {name: [fmt_num(figures.get(m, {}).get(check), 3) for m in gens["model_id"]]
                 for name, check in GENERATOR_FIGURES.items()}
        st.dataframe(pd.DataFrame({
            "model": gens["model_id"], "generator": gens["generator"], "trained on": gens["source_table"], **shown,
            "training rows": gens["train_rows"].map(fmt_int), "holdout rows": gens["holdout_rows"].map(fmt_int),
            "fit time": gens["fit_seconds"].map(lambda v: f"{v:,.1f} s"), "seed": gens["seed"],
            "generated tables": gens["generated_tables"].map(fmt_int),
            "gates passed": gens["passed_gates"].map(fmt_int), "gates failed": gens["failed_gates"].map(fmt_int),
            "trained": gens["created_at"].map(fmt_time), "made by": gens["made_by"]}),
            hide_index=True, key="models_generators")


# ------------------------------------------------------------------ synthetic data
def page_synthetic(s: Settings, status: dict) -> None:
    st.header("Synthetic data")
    db = str(s.db_path)
    tables = data.synthetic_tables(db)
    if tables.empty:
        st.info("No generated table yet: run `make demo` (or `synthwatch generate --model <id> --table <name>`).")
        return
    verdicts = ["not gated" if p is None or pd.isna(p) else "passed" if p else "FAILED" for p in tables["passed"]]
    st.dataframe(pd.DataFrame({
        "table": tables["table_name"], "schema": tables["table_schema"], "gate": verdicts,
        "failing checks": [", ".join(f) if f else "—" for f in tables["failing"]],
        "rows": tables["rows"].map(fmt_int), "generator": tables["generator"].fillna("—"),
        "source": tables["source_table"].fillna("—"), "model": tables["model_id"],
        "generated": tables["created_at"].map(fmt_time)}), hide_index=True, key="synthetic_tables")
    name = st.selectbox("Table", list(tables["table_name"]), key="synthetic_table")
    row = tables.set_index("table_name").loc[name]
    passed = None if row["passed"] is None or pd.isna(row["passed"]) else bool(row["passed"])
    if passed is True:
        st.success(f"{name}: the quality gate passed; the table is published in schema {row['table_schema']}.")
    elif passed is False:
        st.error(f"{name}: the quality gate failed on {', '.join(row['failing']) or 'unknown checks'}; the table "
                 f"is kept in schema {row['table_schema']}.")
    else:
        st.warning(f"{name}: no quality report recorded (run `synthwatch validate --table {name}`).")
    checks = [c for c in row["checks"] if not (c.get("kind") == "expectation" and c.get("passed"))]
    if checks:
        st.dataframe(pd.DataFrame({
            "check": [c.get("name") for c in checks], "kind": [c.get("kind") for c in checks],
            "value": [fmt_num(c.get("value")) for c in checks],
            "bound": ["—" if c.get("threshold") is None else ("≤ " if c.get("direction") == "max" else "≥ ")
                      + fmt_num(c.get("threshold")) for c in checks],
            "result": ["pass" if c.get("passed") else "FAIL" for c in checks]}), hide_index=True,
            key="synthetic_checks")
    html = data.report_html(row["report_path"], s.data_dir)
    if html is not None:
        st.download_button("Open the HTML quality report", html, file_name=f"quality-{name}.html",
                           mime="text/html", key="synthetic_report", icon=":material/description:")
        if st.toggle("Show the report here", key="synthetic_report_inline"):
            import streamlit.components.v1 as components

            components.html(html, height=640, scrolling=True)
    elif row["report_path"]:
        st.caption(f"The report file {row['report_path']} is not in the data directory any more.")
    st.subheader("Synthetic beside real")
    real_name = row["source_table"] if isinstance(row["source_table"], str) else None
    left, right = st.columns(2)
    for column, table, schema, title in ((left, name, row["table_schema"], "Synthetic"),
                                         (right, real_name, "main", "Real")):
        with column:
            st.markdown(f"**{title}** · {table or '—'}")
            if table is None:
                st.info("The real source table is not recorded.")
                continue
            show_sample(s, table, schema, row["kind"], key=f"{title.lower()}_sample")


def show_sample(s: Settings, table: str, schema: str, kind: str, *, key: str) -> None:
    """Sample rows of a table, drawn the way its kind is best looked at: rows, an image grid, a few series."""
    import numpy as np

    db = str(s.db_path)
    if kind == "image":
        frame = data.sample_rows(db, table, schema, n=16)
        if frame.empty:
            st.info(f"Table {schema}.{table} is not in the warehouse.")
            return
        from flows.readers import frame_to_images

        images = frame_to_images(frame)
        n, h, w, c = images.shape
        cols = 4
        grid = np.full((((n + cols - 1) // cols) * (h + 2), cols * (w + 2), c), 255, dtype=np.uint8)
        for i, image in enumerate(images):
            top, left = (i // cols) * (h + 2), (i % cols) * (w + 2)
            grid[top:top + h, left:left + w] = image
        labels = ", ".join(map(str, frame["label"].tolist())) if "label" in frame.columns else ""
        st.image(grid if c != 1 else grid[:, :, 0], caption=f"labels: {labels}" if labels else None,
                 width="stretch", clamp=True)
        return
    if kind == "timeseries":
        import plotly.express as px

        detail = data.catalog_detail(db, table, schema).get("detail", {})
        id_column, time_column = detail.get("id_column"), detail.get("time_column")
        frame = data.sample_series(db, table, schema, id_column, time_column)
        values = [c for c in frame.columns if c not in (id_column, time_column)
                  and pd.api.types.is_numeric_dtype(frame[c])]
        if frame.empty or not values:
            st.dataframe(frame.head(20), hide_index=True)
            return
        x = frame[time_column] if time_column else frame.index
        fig = px.line(frame, x=x, y=values[0], color=frame[id_column].astype(str) if id_column else None,
                      title=f"{values[0]} over time")
        plotly(fig, key)
        return
    frame = data.sample_rows(db, table, schema, n=10)
    if frame.empty:
        st.info(f"Table {schema}.{table} is not in the warehouse.")
    else:
        st.dataframe(frame, hide_index=True)


# ------------------------------------------------------------------ the app
def main() -> None:
    st.set_page_config(page_title="synthwatch", page_icon=":material/monitoring:", layout="wide")
    st.html("<style>[data-testid='stMainBlockContainer'], .block-container {padding-top: 3rem}</style>")
    try:
        s = settings()
    except SynthwatchError as exc:
        st.error(str(exc).splitlines()[0])
        st.stop()
    if not s.db_path.is_file():
        st.error(f"no warehouse at {s.db_path}: run `make demo` (or `synthwatch run`) first")
        st.stop()
    wanted = st.query_params.get("page", "alerts")
    keys = list(PAGES)
    st.sidebar.title("synthwatch")
    page = st.sidebar.radio("Page", keys, index=keys.index(wanted) if wanted in PAGES else 0,
                            format_func=PAGES.get, key="page")
    if st.query_params.get("page") != page:
        st.query_params["page"] = page
    try:
        status = data.warehouse_status(s.db_path)
    except SynthwatchError as exc:
        st.error(str(exc).splitlines()[0])
        st.stop()
    st.sidebar.caption(f"warehouse {s.db_path}")
    st.sidebar.caption(f"{fmt_int(status['scores'])} scores · {fmt_int(status['alerts'])} alerts · "
                       f"{fmt_int(status['feedback'])} labels · {fmt_int(status['batches'])} monitored batches")
    started = time.perf_counter()
    try:
        {"alerts": page_alerts, "monitoring": page_monitoring, "models": page_models,
         "synthetic": page_synthetic}[page](s, status)
    except SynthwatchError as exc:  # a busy or unreadable warehouse: one line, and the next rerun tries again
        st.error(str(exc).splitlines()[0])
    st.sidebar.caption(f"read at {datetime.now().strftime('%H:%M:%S')} in {time.perf_counter() - started:.2f} s")


main()
