"""How fast `boligdata serve` reacts to a landed file, and how many runs a burst costs.

    .venv/bin/python bench/latency.py [--repeat 5] [--burst 5]     (about 2-3 minutes; bounded)

1. a temporary landing (a copy of demo/landing) and warehouse, loaded once with `boligdata run`;
2. `boligdata serve` on a free loopback port (its own Prefect home), waited for until it watches;
3. a 1-row police report file lands (written as .part, renamed: how a sender should deliver), REPEAT
   times, one at a time: landed -> ledger (its meta.deliveries row in the published file) and
   landed -> marts (a meta.runs row that built the marts, started after the file was received);
   the published file is polled read-only every 0.1 s;
4. BURST files land at once; once all are in and the marts rebuilt, and a quiet spell has passed, the
   Prefect API says how many ingestion runs there were, how many of them did work (their run id is in
   meta.runs: a run that finds nothing publishes nothing), and how many materializations;
5. serve is stopped with SIGINT (as Ctrl-C), then its process group is checked to be empty.

Writes bench/results/latency.json and the section between the latency markers of docs/benchmarks.md.
Targets: median landed -> ledger <= 10 s, landed -> marts <= 20 s; a burst: 1 working ingestion run,
no idle run, 1 materialization.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from flows.local_stack import post_to_api

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "latency.json"
DOCS = REPO / "docs" / "benchmarks.md"
BOLIGDATA = Path(sys.executable).with_name("boligdata")
LEDGER_TARGET_S, MARTS_TARGET_S = 10.0, 20.0
HEADER = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def land(landing: Path, name: str, row_id: str) -> tuple[Path, float]:
    """A 1-row file, delivered the way senders should: written under a temporary name, then renamed."""
    final = landing / "politi_anmeldelser" / name
    partial = final.with_name(final.name + ".part")
    partial.write_bytes(f"{HEADER}\r\n{row_id};2021-06-01;330;Motalavej;Hærværk\r\n".encode())
    landed = time.time()
    partial.rename(final)
    return final, landed


def published(warehouse: Path, sql: str, params: list) -> list[tuple]:
    try:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            return conn.execute(sql, params).fetchall()
    except duckdb.Error:  # between a build's rename and our open, or a reader race: look again
        return []


def wait_until(condition, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    return None


def ledger_time(warehouse: Path, names: list[str]) -> float | None:
    rows = published(warehouse, "SELECT count(*) FROM meta.deliveries WHERE file_name IN (SELECT unnest(?))", [names])
    return time.time() if rows and rows[0][0] == len(names) else None


def marts_time(warehouse: Path, names: list[str]) -> float | None:
    """A run that built the marts and started after every one of NAMES was received (UTC, naive)."""
    rows = published(warehouse, """
        SELECT count(*) FROM meta.runs WHERE model_fingerprint IS NOT NULL
           AND started_at >= (SELECT max(received_at) FROM meta.deliveries WHERE file_name IN (SELECT unnest(?)))""",
                     [names])
    return time.time() if rows and rows[0][0] else None


def flow_runs_since(base: str, since: dt.datetime) -> list[dict]:
    """Every flow run created since SINCE, with its deployment's name."""
    names = {d["id"]: d["name"] for d in post_to_api(base, "/deployments/filter")}
    runs = post_to_api(base, "/flow_runs/filter", {"limit": 200, "sort": "EXPECTED_START_TIME_DESC"})
    found = []
    for run in runs:
        created = dt.datetime.fromisoformat(run["created"].replace("Z", "+00:00"))
        if created >= since:
            found.append({"id": run["id"], "deployment": names.get(run["deployment_id"]), "state": run["state_name"],
                          "created": run["created"]})
    return found


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def group_processes(pgid: int) -> list[str]:
    """Processes still in serve's process group (it was started as the leader of a new session)."""
    out = subprocess.run(["ps", "-eo", "pid,pgid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    return [line.strip() for line in out if line.split()[1] == str(pgid)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for any one thing")
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. before/after)")
    parser.add_argument("--no-docs", action="store_true", help="write the JSON only")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    results: dict = {
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"), "label": args.label,
        "machine": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count(),
        "commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip(),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="boligdata-latency-") as tmp:
        folder = Path(tmp)
        landing, warehouse, home = folder / "landing", folder / "w.duckdb", folder / "prefect"
        shutil.copytree(REPO / "demo" / "landing", landing)
        first = subprocess.run([str(BOLIGDATA), "run", "--landing", str(landing), "--warehouse", str(warehouse)],
                               env=env, capture_output=True, text=True)
        if first.returncode != 0:
            sys.exit(f"the initial load failed: {first.stderr.strip()}")
        port = free_port()
        base = f"http://127.0.0.1:{port}/api"
        out_path = folder / "serve.out"
        out = open(out_path, "w")
        serve_started = time.monotonic()
        serve = subprocess.Popen([str(BOLIGDATA), "serve", "--landing", str(landing), "--warehouse", str(warehouse),
                                  "--port", str(port), "--prefect-home", str(home)],
                                 env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                 # Ctrl-C's SIGINT must reach it even when this bench runs in the background
                                 # (a shell starts background jobs with SIGINT ignored, and children inherit that)
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            if not wait_until(lambda: "watching" in out_path.read_text(), args.timeout, every=0.2):
                sys.exit(f"boligdata serve did not start within {args.timeout:.0f} s:\n{out_path.read_text()}")
            results["serve_startup_s"] = round(time.monotonic() - serve_started, 1)
            results["serve_rss_mb_at_start"] = rss_mb(serve.pid)
            time.sleep(2)  # the watcher's first looks at the already-loaded landing

            singles = []
            for i in range(args.repeat):
                path, landed = land(landing, f"latency_{i}.csv", f"LAT-{os.getpid()}-{i}")
                at_ledger = wait_until(lambda: ledger_time(warehouse, [path.name]), args.timeout)
                at_marts = wait_until(lambda: marts_time(warehouse, [path.name]), args.timeout)
                singles.append({"file": path.name, "ledger_s": round(at_ledger - landed, 2) if at_ledger else None,
                                "marts_s": round(at_marts - landed, 2) if at_marts else None})
                print(f"{path.name}: ledger {singles[-1]['ledger_s']} s, marts {singles[-1]['marts_s']} s", flush=True)
                time.sleep(3)  # let the materialization's run finish before the next file
            results["singles"] = singles
            for what in ("ledger_s", "marts_s"):
                values = [s[what] for s in singles if s[what] is not None]
                results[f"median_{what}"] = round(statistics.median(values), 2) if len(values) == len(singles) else None
            results["serve_rss_mb_after_singles"] = rss_mb(serve.pid)

            time.sleep(5)
            burst_since = dt.datetime.now(dt.UTC)
            names, landed = [], None
            for i in range(args.burst):
                path, at = land(landing, f"burst_{i}.csv", f"BURST-{os.getpid()}-{i}")
                names.append(path.name)
                landed = landed or at
            at_ledger = wait_until(lambda: ledger_time(warehouse, names), args.timeout)
            at_marts = wait_until(lambda: marts_time(warehouse, names), args.timeout)
            # a quiet spell: an extra materialization window, late idle runs, a second firing show by now
            quiet = 30.0
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                time.sleep(quiet)
                runs = flow_runs_since(base, burst_since)
                if all(r["state"] in ("Completed", "Failed", "Crashed", "Cancelled") for r in runs):
                    break
                quiet = 5.0
            worked = {run_id for (run_id,) in published(warehouse, "SELECT run_id FROM meta.runs", [])}
            ingest = [r for r in runs if r["deployment"] == "ingest-landed-file"]
            materialize = [r for r in runs if r["deployment"] == "materialize-after-loads"]
            results["burst"] = {
                "files": args.burst,
                "ledger_s": round(at_ledger - landed, 2) if at_ledger else None,
                "marts_s": round(at_marts - landed, 2) if at_marts else None,
                "ingestion_runs": len(ingest),
                "working_ingestion_runs": sum(r["id"] in worked for r in ingest),
                "idle_ingestion_runs": sum(r["id"] not in worked for r in ingest),
                "materializations": len(materialize),
                "runs": runs,
            }
            results["serve_rss_mb_after_burst"] = rss_mb(serve.pid)
        finally:
            stop_started = time.monotonic()
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(60)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
            results["serve_stop_s"] = round(time.monotonic() - stop_started, 1)
            time.sleep(1)
            left = group_processes(serve.pid)
            results["left_running_after_stop"] = left
            if left:
                os.killpg(serve.pid, signal.SIGKILL)
            out.close()
            results["serve_output_tail"] = out_path.read_text().splitlines()[-15:]
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    burst = results.get("burst", {})
    results["met"] = {
        "ledger": (results.get("median_ledger_s") or 1e9) <= LEDGER_TARGET_S,
        "marts": (results.get("median_marts_s") or 1e9) <= MARTS_TARGET_S,
        "burst": burst.get("working_ingestion_runs") == 1 and burst.get("idle_ingestion_runs") == 0
        and burst.get("materializations") == 1,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k not in ("singles", "burst", "serve_output_tail")}, indent=1))
    print(json.dumps({k: v for k, v in burst.items() if k != "runs"}))
    if not args.no_docs:
        write_docs(results)
    print(f"-> {RESULTS.relative_to(REPO)}")


def write_docs(results: dict) -> None:
    """Replace the generated part of the latency section of docs/benchmarks.md."""
    burst = results.get("burst", {})
    rows = "\n".join(f"| {s['file']} | {s['ledger_s']} | {s['marts_s']} |" for s in results["singles"])
    table = (
        f"Last run ({results['measured_at']}, commit {results['commit']}, {results['cores']} cores, "
        f"`bench/results/latency.json`):\n\n"
        f"| 1-row file | landed -> ledger (s) | landed -> marts (s) |\n|---|---:|---:|\n{rows}\n"
        f"| **median** | **{results.get('median_ledger_s')}** (target <= {LEDGER_TARGET_S:.0f}) "
        f"| **{results.get('median_marts_s')}** (target <= {MARTS_TARGET_S:.0f}) |\n\n"
        f"A burst of {burst.get('files')} files: ledger after {burst.get('ledger_s')} s, marts after "
        f"{burst.get('marts_s')} s; {burst.get('ingestion_runs')} ingestion run(s), "
        f"{burst.get('working_ingestion_runs')} of them working and {burst.get('idle_ingestion_runs')} idle; "
        f"{burst.get('materializations')} materialization(s). `boligdata serve`: ready after "
        f"{results.get('serve_startup_s')} s, {results.get('serve_rss_mb_at_start')} MB RSS at start, "
        f"{results.get('serve_rss_mb_after_burst')} MB at the end, stopped in {results.get('serve_stop_s')} s "
        f"by SIGINT with {len(results.get('left_running_after_stop', []))} process(es) left.\n"
    )
    text = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- latency:results -->", "<!-- /latency:results -->"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{table}{end}", text, flags=re.S)
    else:
        text = text.replace("<!-- results -->", f"## Reacting to a landed file (`bench/latency.py`)\n\n{begin}\n{table}{end}\n\n"
                            "<!-- results -->", 1)
    DOCS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
