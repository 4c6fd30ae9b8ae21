"""Real sequence panels the project can read offline, as long frames (id, step, context..., values...).

- basic_motions, japanese_vowels, gunpoint, italy_power: the UEA/UCR files bundled in the sktime 1.2.0 wheel,
  read straight from the zip (sktime is never imported). Fetch the wheel once with
      .venv/bin/python -m pip download --no-deps sktime==1.2.0 -d data/.cache/sktime
  TRAIN and TEST files are pooled; the class label is the context column `label`.
- mitdb: MIT-BIH ECG record (data/raw/mitdb/mitdb.csv, 7,500 samples, one long series with a beat label), cut
  into consecutive segments (`segment`) by `quality.sequence.segment_series`.
- fertility: a country panel with gaps and a context column. The World Bank's total fertility rate per country and
  year (statsmodels' bundled `fertility.csv`) with life expectancy from plotly's bundled gapminder table, which has
  it only every fifth year (1962, 1967, ..., 2007: NaN in the other years, as in a mixed-frequency panel), and the
  gapminder continent as context, joined on the ISO3 code: the 138 countries in both (KOR, which gapminder gives
  both Koreas, left out), years 1960-2011. Both are read
  from their wheels' zips (never imported); fetch them once with
      .venv/bin/python -m pip download --no-deps statsmodels==0.14.4 -d data/.cache/statsmodels
      .venv/bin/python -m pip download --no-deps plotly==7.1.0 -d data/.cache/plotly
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WHEEL_DIR = ROOT / "data" / ".cache" / "sktime"
UEA = {"basic_motions": "BasicMotions", "japanese_vowels": "JapaneseVowels", "gunpoint": "GunPoint",
       "italy_power": "ItalyPowerDemand"}


def _wheel(package: str = "sktime", version: str = "1.2.0") -> Path:
    folder = WHEEL_DIR.parent / package
    wheels = sorted(folder.glob(f"{package}-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"no {package} {version} wheel in {folder}; fetch it with: python -m pip download "
                                f"--no-deps {package}=={version} -d {folder}")
    return wheels[0]


def parse_ts(text: str, first_id: int = 0) -> pd.DataFrame:
    """A .ts file (dimensions separated by ':', the class label last) as a long frame."""
    rows = []
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip().lower() == "@data":
            break
    for i, line in enumerate(l for l in lines if l.strip()):
        *dims, label = line.strip().split(":")
        series = [np.array([np.nan if v == "?" else float(v) for v in d.split(",")]) for d in dims]
        n = max(len(s) for s in series)
        block = {"id": first_id + i, "step": np.arange(n), "label": label}
        for j, s in enumerate(series):
            block[f"dim{j}" if len(series) > 1 else "value"] = np.r_[s, np.full(n - len(s), np.nan)]
        rows.append(pd.DataFrame(block))
    return pd.concat(rows, ignore_index=True)


def load_uea(name: str) -> pd.DataFrame:
    """TRAIN and TEST of a bundled UEA/UCR problem pooled, ids unique across both."""
    problem = UEA[name]
    with zipfile.ZipFile(_wheel()) as zf:
        train = parse_ts(zf.read(f"sktime/datasets/data/{problem}/{problem}_TRAIN.ts").decode("utf-8"))
        test = parse_ts(zf.read(f"sktime/datasets/data/{problem}/{problem}_TEST.ts").decode("utf-8"),
                        first_id=int(train["id"].max()) + 1)
    return pd.concat([train, test], ignore_index=True)


def load_mitdb(segment: int = 60) -> pd.DataFrame:
    """The ECG record cut into `segment`-step segments, `label` kept as a per-step categorical value."""
    from quality.sequence import segment_series

    frame = pd.read_csv(ROOT / "data" / "raw" / "mitdb" / "mitdb.csv")
    frame.insert(0, "step", np.arange(len(frame)))
    frame["label"] = frame["label"].astype(str)
    return segment_series(frame, segment, time="step", column="id")


def load_fertility() -> pd.DataFrame:
    """Countries x years 1960-2011: fertility (a few gaps), life expectancy every fifth year, continent context."""
    with zipfile.ZipFile(_wheel("statsmodels", "0.14.4")) as zf:
        wide = pd.read_csv(io.BytesIO(zf.read("statsmodels/datasets/fertility/fertility.csv")))
    with zipfile.ZipFile(_wheel("plotly", "7.1.0")) as zf:
        gap = pd.read_csv(io.BytesIO(zf.read("plotly/package_data/datasets/gapminder.csv.gz")), compression="gzip")
    # gapminder gives both Koreas the code KOR: a code shared by two countries is left out
    names = gap.groupby("iso_alpha")["country"].nunique()
    gap = gap[gap["iso_alpha"].isin(names.index[names == 1])]
    years = [str(y) for y in range(1960, 2012)]
    wide = wide[wide["Country Code"].isin(gap["iso_alpha"])]
    frame = wide.melt(id_vars="Country Code", value_vars=years, var_name="year", value_name="fertility")
    frame = frame.rename(columns={"Country Code": "id"})
    frame["year"] = frame["year"].astype(np.int64)
    life = gap.rename(columns={"iso_alpha": "id", "lifeExp": "life_expectancy"})
    frame = frame.merge(life[["id", "year", "life_expectancy"]], on=["id", "year"], how="left")
    frame = frame.merge(gap.drop_duplicates("iso_alpha")[["iso_alpha", "continent"]].rename(
        columns={"iso_alpha": "id"}), on="id")
    return frame[["id", "year", "continent", "fertility", "life_expectancy"]].sort_values(
        ["id", "year"], ignore_index=True)


def load_panel(name: str) -> tuple[pd.DataFrame, str, str]:
    """(frame, time column, entity column)."""
    if name == "mitdb":
        return load_mitdb(), "step", "id"
    if name == "fertility":
        return load_fertility(), "year", "id"
    return load_uea(name), "step", "id"


PANELS = ["basic_motions", "japanese_vowels", "gunpoint", "italy_power", "mitdb", "fertility"]
