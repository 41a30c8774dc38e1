"""What a `boligdata run` with nothing new costs, beside `python -c "import duckdb, polars"` (the floor:
what any command of this project pays to start). Target: no-op <= 3 x floor. Median of 5 each.

Also measured, for the record: the same no-op run through the Prefect flow (`--record-noop`, what
every no-op cost before), and importing Great Expectations with this environment's bytecode and
without it (PYTHONPYCACHEPREFIX pointing at an empty folder, under PYTHONDONTWRITEBYTECODE=1: what
each process paid when `uv sync` did not compile bytecode).

    .venv/bin/python bench/noop.py [--landing demo/landing] [--quick]   (about 1.5 minutes; --quick: 10 s)

Run it after `make setup`, which compiles the bytecode.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "noop.json"
BOLIGDATA = Path(sys.executable).with_name("boligdata")
TARGET = 3.0


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return elapsed


def series(command: list[str], times: int, env: dict[str, str] | None = None) -> dict:
    runs = [timed(command, env) for _ in range(times)]
    return {"command": " ".join(command), "median_s": round(statistics.median(runs), 3), "runs": [round(r, 3) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=REPO / "demo" / "landing")
    parser.add_argument("--quick", action="store_true", help="skip the flow no-op and the uncompiled GX import")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "BOLIGDATA_RECORD_NOOP")}

    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp) / "w.duckdb"
        run = [str(BOLIGDATA), "run", "--landing", str(args.landing.resolve()), "--warehouse", str(warehouse)]
        first = timed(run, env)  # takes everything in: the runs below find nothing new
        floor = series([sys.executable, "-c", "import duckdb, polars"], 5, env)
        noop = series(run, 5, env)
        flow_noop = None if args.quick else series([*run, "--record-noop"], 3, env)

    gx = [sys.executable, "-c", "import great_expectations"]
    gx_compiled = series(gx, 3, env)
    gx_source = None
    if not args.quick:
        with tempfile.TemporaryDirectory() as empty:
            gx_source = series(gx, 3, {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"})

    ratio = round(noop["median_s"] / floor["median_s"], 2)
    results = {
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count(),
        "landing": str(args.landing), "first_run_s": round(first, 2),
        "floor_import_duckdb_polars": floor, "noop_run": noop, "noop_run_through_flow": flow_noop,
        "gx_import_compiled": gx_compiled, "gx_import_from_source": gx_source,
        "noop_over_floor": ratio, "target": f"<= {TARGET}", "met": ratio <= TARGET,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"floor (import duckdb, polars): {floor['median_s']:.3f} s; no-op run: {noop['median_s']:.3f} s "
          f"= {ratio} x floor (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    if flow_noop:
        print(f"no-op through the flow (--record-noop): {flow_noop['median_s']:.2f} s")
    print(f"import great_expectations: {gx_compiled['median_s']:.2f} s compiled"
          + (f", {gx_source['median_s']:.2f} s from source" if gx_source else ""))
    print(f"-> {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
