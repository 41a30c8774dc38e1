import os
import sys
from pathlib import Path

import duckdb
import pytest

from transforms.intake import batches as ingest
from transforms.ledger.deliveries import LedgerSnapshot, plan_deliveries
from transforms.reference import DEFAULT_REFERENCE_DIR
from warehouse.load import ensure_schema, record_deliveries
from warehouse.materialize import materialize

for name, value in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false"}.items():
    os.environ.setdefault(name, value)

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden-2"


def pytest_unconfigure(config):
    """Prefect stops a temporary server that a test's flow started when the interpreter exits, and says so
    through its console handler, whose stream (pytest's capture) is closed by then: a "--- Logging error
    ---" traceback under the summary. Its INFO lines are not wanted after the tests."""
    import logging

    logging.getLogger("prefect").setLevel(logging.WARNING)


def boligdata_command() -> list[str]:
    """The `boligdata` command as `make setup` installs it, else the module it runs."""
    installed = REPO / ".venv" / "bin" / "boligdata"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "flows.cli"]


SIGTELSER_HEADER = "År;Kommunekode;Område;Lovområde;Afgørelser;Sigtelser;Sigtede;Sigtede 15-29 år"
NOEGLETAL_HEADER = "År;Kommunekode;Område;Indikator;Tæller;Nævner"
BOLIGORG_HEADER = ("Boligorganisation;Afdeling;År;Lejemål;Fraflytninger;Udsættelser;Tomgangsdage;Hærværkssager;"
                   "Hærværksudgift (kr.);Ventelistetal")


def write_extract(path: Path, lines: list[str], encoding: str = "utf-8", bom: bool = False) -> Path:
    """A delivery as a sender writes it: ;-separated, CRLF line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\r\n".join(lines) + "\r\n").encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def sigtelser_year(year: int, area: str, afgoerelser=(30, 5, 10), sigtelser=(60, 8, 20), sigtede=40, sigtede_15_29=20,
                   kommune: int = 330) -> list[str]:
    """The four rows one (year, area) has in politi_sigtelser, with a consistent I alt row."""
    laws = ("Straffeloven", "Våbenloven", "Lov om euforiserende stoffer")
    rows = [f"{year};{kommune};{area};{law};{a};{s};;" for law, a, s in zip(laws, afgoerelser, sigtelser)]
    rows.append(f"{year};{kommune};{area};I alt;{sum(afgoerelser)};{sum(sigtelser)};{sigtede};{sigtede_15_29}")
    return rows


def land(landing: Path, source: str, name: str, lines: list[str], mtime: float | None = None, **encoding) -> Path:
    path = write_extract(landing / source / name, lines, **encoding)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def ingest_all(landing: Path, warehouse: Path, reference_dir: Path = DEFAULT_REFERENCE_DIR, build_marts: bool = True) -> list[dict]:
    """The flow's steps in order as plain functions (no Prefect); returns the ledger rows written."""
    with duckdb.connect(str(warehouse)) as conn:
        ensure_schema(conn)
    rows = []
    for batch in ingest.delivery_batches(plan_deliveries(landing, LedgerSnapshot.read(warehouse))):
        ingested = ingest.ingest_deliveries(batch, warehouse.parent / "archive", reference_dir, warehouse.parent / "spill")
        rows += record_deliveries(warehouse, ingest.validate_deliveries(ingested, reference_dir), "test-run")
    if build_marts:
        materialize(warehouse, reference_dir)
    return sorted(rows, key=lambda row: row["delivery_id"])


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql, params).fetchall()


def indicator(warehouse: Path, indicator_id: str, level: str, scope_id: str, year: int):
    """(value, numerator, denominator) of one marts.indicator_values row, or None."""
    rows = query(warehouse, """SELECT value, numerator, denominator FROM marts.indicator_values
        WHERE indicator = ? AND level = ? AND scope_id = ? AND year = ?""", [indicator_id, level, scope_id, year])
    return rows[0] if rows else None


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for every test that runs a flow (starting one costs seconds), and
    the settings our flow runs run with (flows/prefect_settings.py), as in production."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.prefect_settings import flow_run_settings

    with prefect_test_harness(server_startup_timeout=60), flow_run_settings():
        yield


@pytest.fixture
def model_builds(monkeypatch) -> list[tuple[str, tuple[int, ...] | None]]:
    """Every model build of the test, as (model, the years rebuilt, or None for a whole build)."""
    import warehouse.materialize as models

    built, build = [], models._build

    def recording(conn, model, years=None):
        built.append((model.name, years))
        build(conn, model, years)

    monkeypatch.setattr(models, "_build", recording)
    return built


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        if os.environ.get("CI"):  # CI always has shared/ beside the clone: missing it must not pass quietly
            pytest.fail(f"{GOLDEN} is missing in CI")
        pytest.skip("../shared/golden-2 is not beside this checkout")
    return GOLDEN
