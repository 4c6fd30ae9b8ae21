"""`synthwatch augment` and range conditions through the CLI."""

from __future__ import annotations

import json


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    return code, (json.loads(out.strip().splitlines()[-1]) if out.strip() else None), err


def test_augment_adds_flagged_gated_rows_of_the_rare_value(cli, warehouse, creditcard_small, tmp_path,
                                                           report_only_config):
    creditcard_small.to_csv(tmp_path / "cc.csv", index=False)
    assert cli(["ingest", tmp_path / "cc.csv", "--kind", "tabular", "--table", "cc"])[0] == 0
    code, result, err = run_json(cli, "augment", "--table", "cc", "--target", "Class", "--rows", "30", "--out",
                                 "cc_aug", "--generator", "cart")
    assert code == 0, err
    assert result["value"] == "1" and result["synthetic_rows"] == 30 and result["exact_copies"] == 0
    out = warehouse.read_frame("cc_aug")
    assert len(out) == len(creditcard_small) + 30
    synthetic = out[out["synthetic"]]
    assert len(synthetic) == 30 and (synthetic["Class"] == 1).all()
    real = out[~out["synthetic"]].drop(columns=["synthetic"]).reset_index(drop=True)
    assert real.equals(warehouse.read_frame("cc"))  # every real row kept, unchanged
    with warehouse.read() as con:
        from flows.bookkeeping import catalog_entry

        assert catalog_entry(con, "cc_aug")["detail"]["augmented_from"] == "cc"
        assert con.execute("SELECT count(*) FROM main._quality_reports").fetchall()[0][0] == 1
    # the rarest value is the default; a value never seen, a missing column, an ingested target are refused
    code, _, err = cli(["augment", "--table", "cc", "--target", "Class", "--value", "7", "--rows", "5", "--out",
                        "x", "--generator", "cart"])
    assert code == 2 and "7" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["augment", "--table", "cc", "--target", "nope", "--rows", "5", "--out", "x"])
    assert code == 2 and "nope" in err
    code, _, err = cli(["augment", "--table", "cc", "--target", "Class", "--rows", "5", "--out", "cc"])
    assert code == 2 and "never writes over" in err


def test_generate_where_a_numeric_range(cli, warehouse, creditcard_small, tmp_path, report_only_config):
    creditcard_small.to_csv(tmp_path / "cc.csv", index=False)
    assert cli(["ingest", tmp_path / "cc.csv", "--kind", "tabular", "--table", "cc"])[0] == 0
    code, trained, err = run_json(cli, "train", "--table", "cc", "--generator", "cart")
    assert code == 0, err
    code, made, err = run_json(cli, "generate", "--model", trained["model_id"], "--rows", "50", "--table", "big",
                               "--where", "Amount>100")
    assert code == 0, err
    assert made["where"] == "Amount>100" and made["conditioning"] == "rejection"  # cart: Amount is not first
    assert made["conditioning_mode"] is None  # a mode says how a native condition is met
    assert (warehouse.read_frame("big")["Amount"] > 100).all()
    code, _, err = cli(["generate", "--model", trained["model_id"], "--rows", "5", "--table", "y", "--where",
                        "Amount>99999999"])
    assert code == 2 and "Amount" in err and len(err.strip().splitlines()) == 1
