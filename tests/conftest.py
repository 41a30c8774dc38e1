import os
from pathlib import Path

import pytest

for name, value in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false"}.items():
    os.environ.setdefault(name, value)

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden"

SIGTELSER_HEADER = "År;Kommunekode;Område;Lovområde;Afgørelser;Sigtelser;Sigtede;Sigtede 15-29 år"
NOEGLETAL_HEADER = "År;Kommunekode;Område;Indikator;Tæller;Nævner"


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


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for every test that runs a flow (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        if os.environ.get("CI"):  # CI always has shared/ beside the clone: missing it must not pass quietly
            pytest.fail(f"{GOLDEN} is missing in CI")
        pytest.skip("../shared/golden is not beside this checkout")
    return GOLDEN
