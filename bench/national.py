"""The national-scale cost curve, measured in one run on the same files and in the same Prefect mode
(ephemeral: each command starts its own temporary server, as `boligdata run` does unattended).

    .venv/bin/python bench/national.py [--scale national|small] [--years 10] [--data DIR] [--repeat 3]

(a) DuckDB floor: one read_csv per source over all its files (per encoding: DuckDB reads UTF-8 and
Latin-1, not Windows-1252), XLSX through polars/calamine; (b) Prefect floor: an empty flow run; (c) the
first full `boligdata run`; (d) a re-run with nothing new; (e) a run after one new month of police
reports; (e_warm) the same month taken in by a process that has run the flow before, as `boligdata
serve` does (its warm worker runs flow runs in-process: flows/warm_worker.py), beside (d_warm), that
process's run with nothing new; (f) the peak RSS of each; (g) the first run again with the intake on a
local Dask cluster of 2 worker processes (`--dask local`), into a warehouse of its own. Every step but
(g) runs --repeat times (default 3) and counts with its median, (c) each time into an empty warehouse
folder. Bytecode is compiled before the first step (site-packages by `make setup`, the project's
modules here), so no step pays compilation. Writes bench/results/latest.json and the table in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "latest.json"
DOC = REPO / "docs" / "benchmarks.md"
BOLIGDATA = [sys.executable, "-m", "flows.cli"]

DUCKDB_FLOOR = """
import sys, duckdb, polars as pl
from pathlib import Path
from transforms.intake.read import detect_encoding
conn = duckdb.connect(sys.argv[2])
for source in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    files, csv_by_encoding = sorted(source.glob("*.*")), {}
    for path in files:
        if path.suffix == ".csv":
            latin = detect_encoding(path.read_bytes()).startswith(("cp", "iso"))
            csv_by_encoding.setdefault("latin-1" if latin else "utf-8", []).append(str(path))
    for number, (encoding, paths) in enumerate(sorted(csv_by_encoding.items())):
        conn.execute(f"CREATE TABLE {source.name}_{number} AS SELECT * FROM read_csv({paths!r}, delim=';', header=true, "
                     f"all_varchar=true, union_by_name=true, encoding='{encoding}')")
    sheets = [pl.read_excel(p, engine="calamine", infer_schema_length=0) for p in files if p.suffix == ".xlsx"]
    if sheets:
        conn.register("sheets", pl.concat(sheets, how="diagonal"))
        conn.execute(f"CREATE TABLE {source.name}_xlsx AS SELECT * FROM sheets")
conn.close()
"""
# One process, as `boligdata serve` keeps one: a first run warms it (Prefect's server, GX, the modules), and
# it takes in a first month (what a served process keeps from one run to the next, e.g. the staged ids'
# hashes, is warm too); then each round times a run that finds nothing new and one that takes in the
# next month, as a served worker meets consecutive months.
WARM_INCREMENT = """
import json, shutil, sys, time
from pathlib import Path
from flows.pipeline import run_pipeline
from flows.prefect_settings import flow_run_settings
from transforms.intake.validate import warm_up
landing, warehouse, reference, *months = sys.argv[1:]
kwargs = dict(landing=landing, warehouse=warehouse, reference_dir=reference)

def timed_run(expected):
    started = time.perf_counter(); summary = run_pipeline(**kwargs); seconds = round(time.perf_counter() - started, 2)
    assert summary.status_counts == expected, summary.status_counts
    return seconds

def take_in(month):
    shutil.copyfile(month, Path(landing) / "politi_anmeldelser" / Path(month).name)
    return timed_run({"loaded": 1})

warm_up()
settings = flow_run_settings()  # as the warm worker runs each flow run (kept: the context ends with the object)
settings.__enter__()
run_pipeline(**kwargs)
take_in(months[0])
nothing_new, one_month = [], []
for month in months[1:]:
    nothing_new.append(timed_run({}))
    one_month.append(take_in(month))
print(json.dumps({"d_warm": nothing_new, "e_warm": one_month}))
"""
# as our runs run: without Prefect's heartbeat thread, which ends a run on its next one-second wake-up
PREFECT_FLOOR = ("from prefect import flow\nfrom flows.prefect_settings import flow_run_settings\n\n"
                 "@flow\ndef empty():\n    pass\n\nwith flow_run_settings():\n    empty()\n")


def measure(name: str, command: list[str], env: dict, repeat: int = 1, before_each=None) -> dict:
    """Median wall time and peak RSS of `repeat` runs of one command, each run to completion
    (`before_each` puts back what a run changes). Repeating the cheap steps keeps one run's noise out
    of ratios whose differences are a few seconds."""
    samples, peak, output = [], 0, ""
    for _ in range(repeat):
        if before_each:
            before_each()
        os.sync()  # what earlier steps wrote (the generated files, their warehouses) is on disk before the clock starts
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        samples.append(round(time.perf_counter() - started, 2))
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{name} failed:\n{output[-3000:]}")
        peak = max(peak, round(usage.ru_maxrss / 1024))
    seconds = statistics.median(samples)
    print(f"{name}: {seconds:.1f} s (runs: {samples}), peak RSS {peak} MB", flush=True)
    return {"seconds": seconds, "runs": samples, "peak_rss_mb": peak, "tail": output.strip().splitlines()[-6:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="national")
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--data", type=Path, help="where to generate (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step but (g) (median)")
    args = parser.parse_args()
    env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # ephemeral mode for every step alike
    data = args.data or Path(tempfile.mkdtemp(prefix="boligdata-bench-"))
    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    from bench.generate import generate, one_new_month

    # no step pays compilation: site-packages are compiled by `make setup` (uv sync --compile-bytecode),
    # the project's modules here (PYTHONDONTWRITEBYTECODE=1 on these machines keeps Python from it)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "flows", "transforms", "warehouse", "bench"], cwd=REPO, check=True)
    rows = generate(data, args.scale, args.years)
    print(f"generated {sum(rows.values()):,} rows in {time.perf_counter() - started:.0f} s: {rows}", flush=True)
    landing, warehouse = data / "landing", data / "warehouse" / "boligdata.duckdb"
    files = sum(1 for _ in landing.rglob("*.*"))  # before the new month lands
    warehouse.parent.mkdir()
    run = [*BOLIGDATA, "run", "--landing", str(landing), "--warehouse", str(warehouse), "--reference", str(data / "reference")]
    (dask_warehouse := data / "warehouse-dask" / "boligdata.duckdb").parent.mkdir()

    def fresh_warehouse() -> None:  # a first run finds no warehouse, archive or reports
        shutil.rmtree(warehouse.parent)
        warehouse.parent.mkdir()

    steps = {
        "a_duckdb_floor": measure("(a) DuckDB floor", [sys.executable, "-c", DUCKDB_FLOOR, str(landing),
                                                       str(data / "floor.duckdb")], env, args.repeat,
                                  lambda: (data / "floor.duckdb").unlink(missing_ok=True)),
        "b_prefect_floor": measure("(b) Prefect floor", [sys.executable, "-c", PREFECT_FLOOR], env, args.repeat),
        "c_first_run": measure("(c) first run", run, env, args.repeat, fresh_warehouse),
        "g_first_run_dask_local_2": measure("(g) first run, intake on a 2-process local Dask cluster",
                                            [*run[:-4], "--warehouse", str(dask_warehouse), *run[-2:], "--dask", "local"],
                                            {**env, "BOLIGDATA_DASK_WORKERS": "2"}),
        "d_nothing_new": measure("(d) nothing new", run, env, args.repeat),
    }
    saved = data / "before_new_month"
    saved.mkdir()
    for name in ("boligdata.duckdb", "boligdata.internal.duckdb"):
        shutil.copyfile(warehouse.with_name(name), saved / name)

    def put_back() -> None:
        for name in ("boligdata.duckdb", "boligdata.internal.duckdb"):
            shutil.copyfile(saved / name, warehouse.with_name(name))

    # January for the cold step (e) and the warm process's first month, the next months for its rounds;
    # each is landed by the step that takes it in
    months = [one_new_month(data, args.scale, month=number) for number in range(1, args.repeat + 2)]
    months = [generated.rename(data / generated.name) for generated in months]
    month = months[0]
    warm = measure("(e_warm, d_warm) one new month, and nothing new, in a warm process",
                   [sys.executable, "-c", WARM_INCREMENT, str(landing), str(warehouse), str(data / "reference"),
                    *map(str, months)], {**env, "PREFECT_LOGGING_LEVEL": "CRITICAL"})
    for taken_in in months:
        (landing / "politi_anmeldelser" / taken_in.name).unlink(missing_ok=True)
    rounds = json.loads(next(line for line in reversed(warm["tail"]) if line.startswith('{"d_warm"')))
    for key in ("d_warm", "e_warm"):
        steps[f"{key}_served"] = {"seconds": statistics.median(rounds[key]), "runs": rounds[key],
                                  "peak_rss_mb": warm["peak_rss_mb"], "tail": []}
    shutil.copyfile(month, landing / "politi_anmeldelser" / month.name)
    steps["e_one_new_month"] = measure("(e) one new month", run, env, args.repeat, put_back)
    a, b, c, d, e = (steps[k]["seconds"] for k in ("a_duckdb_floor", "b_prefect_floor", "c_first_run", "d_nothing_new", "e_one_new_month"))
    d_warm, e_warm = steps["d_warm_served"]["seconds"], steps["e_warm_served"]["seconds"]
    peak = max(s["peak_rss_mb"] for s in steps.values())
    targets = {
        "work_over_floor": {"value": round((c - d) / a, 2), "target": "<= 3", "met": (c - d) <= 3 * a},
        "noop_over_prefect": {"value": round(d / b, 2), "target": "<= 1.5", "met": d <= 1.5 * b},
        # a landed month is taken in by the served, warm flow (boligdata serve); a cold `boligdata run`
        # adds the fixed start-up of any working run (Prefect's temporary server, GX), shown beside it
        "increment_over_full_served": {"value": round((e_warm - d_warm) / (c - d), 4), "target": "<= 0.05",
                                       "met": (e_warm - d_warm) <= 0.05 * (c - d)},
        "increment_over_full_cold": {"value": round((e - d) / (c - d), 4), "target": "(shown)", "met": None},
        "peak_rss_gib": {"value": round(peak / 1024, 2), "target": "<= 2", "met": peak <= 2048},
    }
    result = {
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)},
        "scale": args.scale, "years": args.years, "rows": rows, "files": files,
        "steps": steps, "targets": targets,
    }
    result["dask_local_over_threads"] = round(steps["g_first_run_dask_local_2"]["seconds"] / c, 2)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_doc(result)
    print(json.dumps(targets, indent=2))
    if not args.data:
        shutil.rmtree(data, ignore_errors=True)


def write_doc(result: dict) -> None:
    steps, targets, machine = result["steps"], result["targets"], result["machine"]
    table = "\n".join(f"| {name} | {s['seconds']:.1f} | {', '.join(f'{r:.1f}' for r in s['runs'])} | {s['peak_rss_mb']} |"
                      for name, s in steps.items())
    checks = "\n".join(f"| {name} | {t['value']} | {t['target']} | {'-' if t['met'] is None else 'yes' if t['met'] else '**no**'} |" for name, t in targets.items())
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    marker = "<!-- results -->"
    head = text.split(marker)[0] if marker in text else "# Benchmarks\n\n"
    DOC.write_text(
        f"{head}{marker}\n## Last run ({result['measured_at']}, {result['scale']} scale, {result['years']} years)\n\n"
        f"Machine: {machine['platform']}, Python {machine['python']}, {machine['cpus']} cores, {machine['memory_gib']} GiB. "
        f"{sum(result['rows'].values()):,} rows in {result['files']} files.\n\n"
        f"| step | seconds (median) | runs | peak RSS (MB) |\n|---|---:|---|---:|\n{table}\n\n"
        f"| ratio | measured | target | met |\n|---|---:|---|---|\n{checks}\n\n"
        f"First run with the intake on a 2-process local Dask cluster over the same on threads (g / c): "
        f"**{result['dask_local_over_threads']}** (docs/scaling.md).\n", encoding="utf-8")


if __name__ == "__main__":
    main()
