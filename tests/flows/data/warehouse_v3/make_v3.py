"""Build this fixture: run with PYTHONPATH at a checkout of commit 591aa82 (schema version 3), from the repo root.

Writes into /work/v3fix; then copy export_v3/* here and make the paths in load.sql relative (export_v3/...).
"""
import os, sys, tempfile
from pathlib import Path
import duckdb
d = Path("/work/v3fix/data"); d.mkdir(exist_ok=True)
os.environ["SYNTHWATCH_DATA_DIR"] = str(d)
os.environ["SYNTHWATCH_PREFECT_HOME"] = str(d / "prefect")
from flows.prefect_env import configure_prefect
configure_prefect(d / "prefect", d)
from flows.cli import main
import pandas as pd
adult = pd.read_csv("data/raw/adult/adult.csv").sample(200, random_state=0)
adult.to_csv(d / "adult.csv", index=False)
con = duckdb.connect()
cc = con.execute("WITH t AS (SELECT *, row_number() OVER () rn FROM read_csv('data/raw/creditcard/creditcard.csv')) "
  "(SELECT * EXCLUDE (rn) FROM t WHERE Class=0 AND rn % 700 = 0 LIMIT 290) UNION ALL (SELECT * EXCLUDE (rn) FROM t WHERE Class=1 LIMIT 10)").df()
cc.to_csv(d / "cc.csv", index=False)
q = {"quality": {"seed": 0, "thresholds": {"accuracy": None, "discriminator_auc": None, "dcr_share": None, "nndr_ratio": None, "mia_auroc": None, "utility_drop": None, "exact_copy_rate": 1.0, "null_tolerance": 1.0, "range_tolerance": 1.0, "hard_range_margin": 100.0}}}
import yaml
(d / "q.yaml").write_text(yaml.safe_dump(q))
os.environ["SYNTHWATCH_CONFIG"] = str(d / "q.yaml")
assert main(["ingest", str(d / "adult.csv"), "--kind", "tabular", "--table", "adult"]) == 0
assert main(["ingest", str(d / "cc.csv"), "--kind", "tabular", "--table", "cc"]) == 0
series = pd.DataFrame({"sensor": ["a"] * 6 + ["b"] * 6, "t": list(range(6)) * 2, "value": [float(i) for i in range(12)]})
series.to_csv(d / "series.csv", index=False)
assert main(["ingest", str(d / "series.csv"), "--kind", "timeseries", "--table", "series", "--time-column", "t",
             "--id-column", "sensor"]) == 0
assert main(["train", "--table", "adult", "--generator", "cart", "--json"]) == 0
from flows.config import Settings
from flows.train import list_models
s = Settings.from_env()
mid = list_models(s)[0]["model_id"]
assert main(["generate", "--model", mid, "--rows", "50", "--table", "adult_synth"]) == 0
assert main(["detect", "train", "--table", "cc", "--detector", "iforest", "--json"]) == 0
from flows.detect import pipeline_stage
pipeline_stage(s, {"table": "cc", "detector": "iforest", "label_column": "Class", "normal_value": 0})
con = duckdb.connect(str(s.db_path))
con.execute("EXPORT DATABASE '/work/v3fix/export_v3' (FORMAT parquet)")
con.close()
print("done", mid)
