"""Validation cost per delivery size: read, stage and validate one politi_anmeldelser file of N rows,
beside DuckDB's own read_csv of the same file (the floor). Ratios come from one run on one machine.

    .venv/bin/python bench/validation.py [ROWS ...]     (default 100000 1000000)
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from transforms.intake.read import read_text_rows
from transforms.intake.stage import stage_rows
from transforms.intake.validate import validate_rows, warm_up
from transforms.reference import load_reference
from transforms.sources import contract_for
from transforms.sources.politi_anmeldelser import CATEGORIES
from transforms.sources.suite import suite_path

RESULTS = Path(__file__).parent / "results" / "validation.json"


def write_police_reports(path: Path, rows: int) -> None:
    """A contract-conforming file of `rows` reports, 1 % of them with an unknown area."""
    days = pl.date_range(dt.date(2016, 1, 1), dt.date(2016, 12, 31), eager=True).cast(pl.Utf8)
    areas = pl.Series(["", "", "", "Motalavej", "Ringparken", "Sydbyen", "Skælskør"] * 14 + ["Motalvej"])
    pl.DataFrame({
        "Anmeldelses-ID": pl.int_range(rows, eager=True).cast(pl.Utf8).str.pad_start(9, "0"),
        "Anmeldt dato": days.sample(rows, with_replacement=True, seed=1),
        "Kommunekode": ["330"] * rows,
        "Område": areas.sample(rows, with_replacement=True, seed=2),
        "Kategori": pl.Series(CATEGORIES).sample(rows, with_replacement=True, seed=3),
    }).write_csv(path, separator=";")


def measure(rows: int, folder: Path) -> dict:
    path = folder / f"anmeldelser_{rows}.csv"
    write_police_reports(path, rows)
    contract, reference = contract_for("politi_anmeldelser"), load_reference()
    started = time.perf_counter()
    duckdb.sql(f"SELECT count(*) FROM read_csv('{path}', delim=';', all_varchar=true)").fetchall()
    floor = time.perf_counter() - started
    started = time.perf_counter()
    text = read_text_rows(path, contract)
    read_done = time.perf_counter()
    staged = stage_rows(text.frame, contract, reference)
    stage_done = time.perf_counter()
    problems = validate_rows(staged.frame, staged.problems, text.frame, contract, reference)
    validate_done = time.perf_counter()
    return {
        "rows": rows, "file_mb": round(path.stat().st_size / 1e6, 1), "duckdb_read_csv_s": round(floor, 3),
        "read_s": round(read_done - started, 3), "stage_s": round(stage_done - read_done, 3),
        "validate_s": round(validate_done - stage_done, 3), "problems": problems.height,
        "expectations": len(json.loads(suite_path(contract).read_text(encoding="utf-8"))["expectations"]),
        "total_over_floor": round((validate_done - started) / floor, 1),
    }


def main(sizes: list[int]) -> None:
    load_reference()
    warm_up()  # GX's import and set-up are paid once, outside the timings
    with tempfile.TemporaryDirectory() as folder:
        runs = [measure(rows, Path(folder)) for rows in sizes]
    result = {"measured_at": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "python": platform.python_version(), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "runs": runs}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main([int(n) for n in sys.argv[1:]] or [100_000, 1_000_000])
