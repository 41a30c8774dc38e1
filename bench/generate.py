"""Synthetic, contract-conforming extracts at national scale, with the reference data that names
their areas, plans and departments: `boligdata generate --scale national --years 10 OUT` writes
OUT/landing/<source>/... and OUT/reference/ (the project's reference data plus the synthetic places).

Every kommune gets three areas with two housing departments each. Police reports come as one yearly
file per police district (about 5 million rows over ten years at national scale); a share of rows
is broken on purpose, and a share of files is Windows-1252 or XLSX, as real senders deliver."""

from __future__ import annotations

import datetime as dt
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from transforms.reference import DEFAULT_REFERENCE_DIR, read_reference_table
from transforms.sources.brand_haendelser import EVENT_TYPES as FIRE_TYPES
from transforms.sources.politi_anmeldelser import CATEGORIES

AREAS_PER_KOMMUNE = 3
DEPARTMENTS_PER_AREA = 2
POLICE_DISTRICTS = 12
SHARE_INDICATORS = ["dagtilbud_1_5_andel", "uddannelsesparat_9kl_andel", "kun_grundskole_18_29_andel",
                    "neet_15_29_andel", "uden_tilknytning_18_64_andel", "beskaeftigede_18_64_andel",
                    "kontanthjaelp_18_64_andel", "frivillige_18plus_andel", "valgdeltagelse_andel"]


@dataclass(frozen=True)
class Scale:
    police_reports_per_kommune_year: int
    fires_per_kommune_year: int


SCALES = {"national": Scale(5_100, 40), "small": Scale(200, 5)}


def _areas(kommuner: list[str]) -> pl.DataFrame:
    return pl.DataFrame([
        {"area_id": f"k{code}-{i}", "name": f"Boligområde {code}-{i}", "kommune_code": code}
        for code in kommuner for i in range(1, AREAS_PER_KOMMUNE + 1)
    ])


def write_reference(out: Path, kommuner: list[str]) -> Path:
    """The project's reference data plus one plan, three areas and six departments per kommune."""
    reference = out / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference, dirs_exist_ok=True)
    areas = _areas(kommuner)

    def append(name: str, frame: pl.DataFrame) -> None:
        with open(reference / f"{name}.csv", "a", encoding="utf-8") as handle:
            handle.write(frame.write_csv(separator=";", include_header=False))

    append("areas", areas)
    append("plans", pl.DataFrame({"plan_id": [f"plan-{c}" for c in kommuner], "name": [f"Helhedsplan {c}" for c in kommuner],
                                  "kommune_code": kommuner, "start_date": "2020-01-01", "end_date": "2023-12-31"}))
    append("plan_areas", areas.select(pl.concat_str([pl.lit("plan-"), "kommune_code"]).alias("plan_id"), "area_id"))
    departments = [{"boligorganisation": f"Boligselskab {row['kommune_code']}", "afdeling": 10 * i + d,
                    "area_id": row["area_id"], "valid_from": "2000-01-01", "valid_to": None, "note": "synthetic"}
                   for row in areas.iter_rows(named=True) for i in [int(row["area_id"].rsplit("-", 1)[1])]
                   for d in range(1, DEPARTMENTS_PER_AREA + 1)]
    append("departments", pl.DataFrame(departments))
    return reference


class _Writer:
    """Writes a frame as a sender would: ;-CSV in UTF-8, sometimes Windows-1252, sometimes XLSX."""

    def __init__(self, rng: random.Random, cp1252_share: float, xlsx_share: float):
        self.rng, self.cp1252_share, self.xlsx_share = rng, cp1252_share, xlsx_share

    def write(self, frame: pl.DataFrame, path: Path, xlsx_allowed: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        draw = self.rng.random()
        if xlsx_allowed and draw < self.xlsx_share:
            target = path.with_suffix(".xlsx")
            frame.write_excel(target, autofit=False)
            return target
        text = frame.write_csv(separator=";", line_terminator="\r\n")
        encoding = "cp1252" if draw > 1 - self.cp1252_share else "utf-8"
        path.write_bytes(text.encode(encoding))
        return path


def _break(frame: pl.DataFrame, column: str, bad_value: str, share: float, rng: np.random.Generator) -> pl.DataFrame:
    """Put a bad value into a share of the rows, as a quarantine test for the pipeline."""
    hit = pl.Series(rng.random(frame.height) < share)
    return frame.with_columns(pl.when(hit).then(pl.lit(bad_value)).otherwise(pl.col(column).cast(pl.Utf8)).alias(column))


def police_reports(kommuner: list[str], year: int, month: int | None, per_kommune_year: int,
                   bad_share: float, rng: np.random.Generator) -> pl.DataFrame:
    """Reports of one year (or one month of it) for a set of kommuner."""
    rows = per_kommune_year if month is None else per_kommune_year // 12
    first = dt.date(year, month or 1, 1)
    last = (dt.date(year + (month == 12), (month % 12) + 1, 1) if month else dt.date(year + 1, 1, 1)) - dt.timedelta(days=1)
    days = pl.date_range(first, last, eager=True).cast(pl.Utf8).to_numpy()
    frames = []
    for code in kommuner:
        areas = np.array(["", "", "", "", *[f"Boligområde {code}-{i}" for i in range(1, AREAS_PER_KOMMUNE + 1)]])
        frames.append(pl.DataFrame({
            "Anmeldelses-ID": [f"{code}-{year}-{month or 0:02d}-{i:06d}" for i in range(rows)],
            "Anmeldt dato": rng.choice(days, rows),
            "Kommunekode": code,
            "Område": rng.choice(areas, rows),
            "Kategori": rng.choice(CATEGORIES, rows),
        }))
    return _break(pl.concat(frames), "Område", "Ukendt område", bad_share, rng)


def generate(out: Path, scale: str = "national", years: int = 10, bad_share: float = 0.005,
             cp1252_share: float = 0.2, xlsx_share: float = 0.2, seed: int = 2026) -> dict[str, int]:
    """Write OUT/reference and OUT/landing; returns rows written per source."""
    size = SCALES[scale]
    out = Path(out)
    rng, draw = np.random.default_rng(seed), random.Random(seed)
    writer = _Writer(draw, cp1252_share, xlsx_share)
    kommuner = sorted(read_reference_table(DEFAULT_REFERENCE_DIR, "kommuner")["kommune_code"].to_list())
    if scale == "small":
        kommuner = kommuner[:6]
    write_reference(out, kommuner)
    landing = out / "landing"
    last_year = dt.date.today().year - 1
    year_list = list(range(last_year - years + 1, last_year + 1))
    districts = [d for d in (kommuner[i::POLICE_DISTRICTS] for i in range(POLICE_DISTRICTS)) if d]
    rows: dict[str, int] = {}

    def count(source: str, frame: pl.DataFrame) -> None:
        rows[source] = rows.get(source, 0) + frame.height

    for year in year_list:
        for number, district in enumerate(districts, start=1):
            frame = police_reports(district, year, None, size.police_reports_per_kommune_year, bad_share, rng)
            writer.write(frame, landing / "politi_anmeldelser" / f"kreds{number:02d}_{year}.csv")
            count("politi_anmeldelser", frame)

    for number, district in enumerate(districts, start=1):
        scopes = [(code, f"Boligområde {code}-{i}") for code in district for i in range(1, AREAS_PER_KOMMUNE + 1)]
        scopes += [(code, "Hele kommunen") for code in district]
        laws = ["Straffeloven", "Våbenloven", "Lov om euforiserende stoffer"]
        records = []
        for year in year_list:
            for code, area in scopes:
                decisions = rng.integers(5, 60, 3)
                charges = decisions * 2 + rng.integers(0, 10, 3)
                records += [(year, code, area, law, int(a), int(c), None, None) for law, a, c in zip(laws, decisions, charges)]
                persons = int(charges.sum() * 0.45)
                records.append((year, code, area, "I alt", int(decisions.sum()), int(charges.sum()), persons, persons // 2))
        frame = pl.DataFrame(records, orient="row", schema=["År", "Kommunekode", "Område", "Lovområde", "Afgørelser",
                                                             "Sigtelser", "Sigtede", "Sigtede 15-29 år"])
        writer.write(frame, landing / "politi_sigtelser" / f"kreds{number:02d}_sigtelser.csv")
        count("politi_sigtelser", frame)

    for year in year_list:
        records = []
        for code in kommuner:
            for area in [f"Boligområde {code}-{i}" for i in range(1, AREAS_PER_KOMMUNE + 1)] + ["Hele kommunen"]:
                safe = rng.uniform(55, 92)
                records.append((year, code, area, f"{safe:.1f}".replace(".", ","), f"{min(100 - safe, rng.uniform(3, 25)):.1f}".replace(".", ","),
                                int(rng.integers(120, 400))))
        records += [(year, None, "Landsplan", "88,1", None, None), (year, None, "SUB-gennemsnit", "71,0", None, None)]
        frame = pl.DataFrame(records, orient="row", schema=["År", "Kommunekode", "Område", "Andel trygge (%)",
                                                             "Andel utrygge (%)", "Respondenter"])
        writer.write(frame, landing / "politi_tryghed" / f"tryghed_{year}.csv")
        count("politi_tryghed", frame)

    for code in kommuner:
        organisation = f"Boligselskab {code}"
        records = []
        for year in year_list:
            for i in range(1, AREAS_PER_KOMMUNE + 1):
                for d in range(1, DEPARTMENTS_PER_AREA + 1):
                    units = int(rng.integers(80, 400))
                    moves = int(units * rng.uniform(0.05, 0.2))
                    records.append((organisation, f"{10 * i + d:03d}", year, units, moves, int(rng.integers(0, 3)),
                                    int(rng.integers(0, units * 3)), int(rng.integers(0, 15)),
                                    f"{rng.uniform(0, 90000):.2f}".replace(".", ","), int(rng.integers(0, 2000))))
        frame = pl.DataFrame(records, orient="row", schema=["Boligorganisation", "Afdeling", "År", "Lejemål", "Fraflytninger",
                                                             "Udsættelser", "Tomgangsdage", "Hærværkssager",
                                                             "Hærværksudgift (kr.)", "Ventelistetal"])
        writer.write(frame, landing / "boligorg_afdelinger" / f"boligselskab_{code}.csv", xlsx_allowed=True)
        count("boligorg_afdelinger", frame)

        records = []
        for year in year_list:
            for area, people in [(f"Boligområde {code}-{i}", int(rng.integers(800, 3000))) for i in range(1, AREAS_PER_KOMMUNE + 1)] + \
                                [("Hele kommunen", int(rng.integers(20000, 300000)))]:
                records += [(year, code, area, "befolkning", str(people), None),
                            (year, code, area, "befolkning_15_29", str(people // 5), None),
                            (year, code, area, "befolkning_18plus", str(int(people * 0.75)), None)]
                for indicator in SHARE_INDICATORS:
                    denominator = max(20, people // 10)
                    records.append((year, code, area, indicator, str(int(denominator * rng.uniform(0.1, 0.9))), denominator))
                records.append((year, code, area, "karakter_9kl_gns", f"{25 * rng.uniform(4, 8):.1f}".replace(".", ","), 25))
        frame = pl.DataFrame(records, orient="row", schema=["År", "Kommunekode", "Område", "Indikator", "Tæller", "Nævner"])
        writer.write(frame, landing / "kommune_noegletal" / f"noegletal_{code}.csv", xlsx_allowed=True)
        count("kommune_noegletal", frame)

        fires = size.fires_per_kommune_year * len(year_list)
        dates = [dt.date(draw.choice(year_list), 1, 1) + dt.timedelta(days=draw.randrange(365)) for _ in range(fires)]
        frame = pl.DataFrame({
            "Hændelses-ID": [f"B{code}-{i:06d}" for i in range(fires)],
            "Dato": [d.isoformat() for d in dates],
            "Kommunekode": code,
            "Område": rng.choice(["", "", *[f"Boligområde {code}-{i}" for i in range(1, AREAS_PER_KOMMUNE + 1)]], fires),
            "Hændelsestype": rng.choice(FIRE_TYPES, fires),
        })
        writer.write(frame, landing / "brand_haendelser" / f"brand_{code}.csv")
        count("brand_haendelser", frame)
    return rows


def one_new_month(out: Path, scale: str = "national", seed: int = 7, month: int = 1) -> Path:
    """One more month of police reports for every kommune (MONTH of the current year), as one file."""
    kommuner = sorted(read_reference_table(DEFAULT_REFERENCE_DIR, "kommuner")["kommune_code"].to_list())
    if scale == "small":
        kommuner = kommuner[:6]
    frame = police_reports(kommuner, dt.date.today().year, month, SCALES[scale].police_reports_per_kommune_year, 0.0,
                           np.random.default_rng(seed + month - 1))
    path = Path(out) / "landing" / "politi_anmeldelser" / f"landsdaekkende_{dt.date.today().year}-{month:02d}.csv"
    frame.write_csv(path, separator=";", line_terminator="\r\n")
    return path
