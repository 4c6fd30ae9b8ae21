"""The HTML report renders every section and the check table from a real evaluation."""

from __future__ import annotations

import re

from quality import evaluate, render_report


def test_report_renders_checks_plots_and_writes_only_the_given_path(tables, tmp_path):
    train, holdout, _ = tables
    synthetic = train.copy()  # fails privacy: the report must say so
    report = evaluate(train, synthetic, holdout)
    out = tmp_path / "report.html"
    document = render_report(report, train, synthetic, title="copy <test>", path=out)
    assert out.read_text(encoding="utf-8") == document
    assert list(tmp_path.iterdir()) == [out]
    assert "copy &lt;test&gt;" in document
    assert 'id="checks"' in document
    rows = re.findall(r"<tr class=\"(pass|fail)\"><td>([^<]+)</td>", document)
    assert len(rows) == len(report.checks)
    assert ("fail", "dcr_share") in rows and ("pass", "discriminator_auc") in rows
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', document)
    assert set(train.columns) <= set(images)
    assert "association matrices" in images and "DCR histograms" in images
    assert "FAIL" in document


def test_report_without_holdout_has_no_dcr_section(tables):
    train, _, fresh = tables
    report = evaluate(train, fresh)
    document = render_report(report, train, fresh)
    assert "DCR histograms" not in document
    assert "PASS" in document
