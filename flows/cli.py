"""`boligdata`: the command line for operators, stewards and the README's demo."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
import traceback
from pathlib import Path

# Nothing we run phones home (spec/stack-notes.md).
for _name, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_name, _value)

INDICATORS_VS_KOMMUNE = """
SELECT indicator, scope_id AS "område/plan", year,
       round(value, 1) AS value, round(kommune_value, 1) AS kommune,
       CASE better_than_kommune WHEN true THEN 'better' WHEN false THEN 'worse' END AS "vs kommune",
       unit
FROM marts.indicator_vs_kommune
WHERE year = (SELECT max(year) FROM marts.indicator_vs_kommune v2 WHERE v2.indicator = indicator_vs_kommune.indicator)
  AND ($indicator IS NULL OR indicator = $indicator)
  AND ($level = 'all' OR level = $level)
ORDER BY indicator, level DESC, scope_id
"""


def _fail(message: str, code: int) -> int:
    print(f"boligdata: {message}", file=sys.stderr)
    return code


def _release_frames(error: BaseException | None) -> None:
    """Drop the locals of a failed run's frames (open DuckDB handles among them): Prefect keeps the
    exception in its states, and DuckDB's bindings complain about handles still alive at exit."""
    while error is not None:
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def _quiet_prefect(verbose: bool) -> None:
    """Our own lines only, unless -v; must run before Prefect is imported."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # a local cluster's start-up lines


def _failure_line(error: Exception, verbose: bool) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    _release_frames(error)
    return f"run failed, warehouse unchanged: {reason}" + ("" if verbose else " (-v shows details)")


def _run_argv(args: argparse.Namespace) -> list[str]:
    """The same `run` for the supervised child (flows/guard.py)."""
    argv = ["run", "--landing", str(args.landing), "--warehouse", str(args.warehouse)]
    for flag, value in (("--reference", args.reference), ("--archive", args.archive)):
        if value:
            argv += [flag, str(value)]
    return argv + (["-v"] if args.verbose else []) + (["--record-noop"] if args.record_noop else [])


def _run(args: argparse.Namespace) -> int:
    from warehouse.build import WarehouseUnavailable, check_warehouse_path

    if not args.landing.is_dir():
        return _fail(f"landing folder {args.landing} does not exist", 2)
    try:
        check_warehouse_path(args.warehouse)
    except WarehouseUnavailable as problem:
        return _fail(str(problem), 2)
    from flows import guard
    from flows.runner import ADDRESS_ENV, LOCAL_ENV

    # The task runner is chosen from the environment when the flow is imported (flows/runner.py); the
    # supervised run below inherits it.
    if args.dask_address:
        os.environ[ADDRESS_ENV] = args.dask_address
    if args.dask:
        os.environ[LOCAL_ENV] = args.dask
    if not os.environ.get(guard.SUPERVISED_ENV):
        # Nothing new: say so without starting Prefect (seconds) or importing GX; unless every run
        # is to be recorded in Prefect.
        record_noop = args.record_noop or os.environ.get("BOLIGDATA_RECORD_NOOP", "") not in ("", "0")
        unchanged = None if record_noop else guard.nothing_new(args.landing, args.warehouse, args.reference)
        if unchanged:
            print(f"boligdata run: {args.landing} -> {args.warehouse}", flush=True)
            print(unchanged)
            return 0
        return guard.run_supervised(_run_argv(args))  # the run below, in a child that leaks nothing

    _quiet_prefect(args.verbose)
    from flows.pipeline import (
        run_pipeline,  # Prefect's import is slow; keep --help and checks fast
    )

    progress = logging.getLogger("boligdata")
    progress.setLevel(logging.INFO)
    progress.addHandler(logging.StreamHandler(sys.stdout))
    progress.propagate = False  # printed once here, not again through Prefect's console handler
    print(f"boligdata run: {args.landing} -> {args.warehouse}", flush=True)
    try:
        summary = run_pipeline(
            landing=str(args.landing), warehouse=str(args.warehouse),
            reference_dir=str(args.reference) if args.reference else None,
            archive_dir=str(args.archive) if args.archive else None,
        )
    except KeyboardInterrupt as interrupt:  # Ctrl-C (the supervisor passes it on)
        _release_frames(interrupt)
        code = _fail("run interrupted, warehouse unchanged", 130)
        # Task threads still finishing may hold DuckDB handles, which DuckDB's bindings list at exit
        # ("nanobind: leaked ..."): the line above is the last thing to say.
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        return code
    except Exception as error:  # the run could not complete; the warehouse is as the last run left it
        return _fail(_failure_line(error, args.verbose), 1)
    print(summary.render())
    return 0


def _indicators(args: argparse.Namespace) -> int:
    import duckdb

    with duckdb.connect(str(args.warehouse), read_only=True) as conn:
        table = conn.sql(INDICATORS_VS_KOMMUNE, params={"indicator": args.indicator, "level": args.level})
        table.show(max_rows=200, max_width=200)
    return 0


TARGETS_SUMMARY = """
SELECT plan_id, year, count(*) FILTER (WHERE met) AS met, count(*) FILTER (WHERE NOT met) AS "not met",
       count(*) FILTER (WHERE met IS NULL) AS "not evaluable"
FROM marts.target_status
WHERE ($plan IS NULL OR plan_id = $plan)
GROUP BY ALL HAVING count(met) > 0
ORDER BY plan_id, year
"""
LATEST_VERDICTS = """
SELECT plan_id, target_id, scope_id, year, CASE met WHEN true THEN 'met' WHEN false THEN 'not met' END AS verdict,
       round(actual_value, 1) AS actual, round(target_value, 1) AS target, source
FROM marts.target_status AS t
WHERE met IS NOT NULL AND ($plan IS NULL OR plan_id = $plan)
  AND year = (SELECT max(year) FROM marts.target_status AS l
              WHERE l.plan_id = t.plan_id AND l.target_id = t.target_id AND l.scope_id = t.scope_id AND l.met IS NOT NULL)
ORDER BY plan_id, target_id, scope_id
"""


def _targets(args: argparse.Namespace) -> int:
    import duckdb

    with duckdb.connect(str(args.warehouse), read_only=True) as conn:
        plans = [p for (p,) in conn.execute("SELECT plan_id FROM ref.plans ORDER BY 1").fetchall()]
        if args.plan and args.plan not in plans:
            return _fail(f"no plan {args.plan!r}; plans: {', '.join(plans)}", 2)
        params = {"plan": args.plan}
        print("Target verdicts per plan and year (marts.target_status):")
        conn.sql(TARGETS_SUMMARY, params=params).show(max_rows=100)
        print("Latest verdict of each target:")
        conn.sql(LATEST_VERDICTS, params=params).show(max_rows=200, max_width=200)
        (without,) = conn.execute("SELECT count(*) FROM marts.targets_without_data WHERE $plan IS NULL OR plan_id = $plan",
                                  params).fetchall()[0]
        print(f"{without} agreed target(s) without data yet: SELECT * FROM marts.targets_without_data")
    return 0


def _show(frame, empty: str) -> None:
    """Print a polars frame as a plain table for a terminal."""
    import polars as pl

    if frame.is_empty():
        print(empty)
        return
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=220, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True):
        print(frame)


def _deliveries(args: argparse.Namespace) -> int:
    from transforms.steward.quarantine import read_deliveries

    frame = read_deliveries(args.warehouse, args.source, args.status)
    _show(frame.drop("received_at", "encoding"), "no deliveries match")
    return 0


def _quarantine_list(args: argparse.Namespace) -> int:
    from transforms.steward.quarantine import read_quarantine

    status = None if args.status == "all" else args.status
    frame = read_quarantine(args.warehouse, args.source, status, args.rule, args.delivery)
    _show(frame.select("delivery_id", "file_name", "line_number", "column_name", "value", "rule", "status",
                       "rule_description"), "no quarantined rows match")
    return 0


def _quarantine_show(args: argparse.Namespace) -> int:
    from transforms.steward.quarantine import (
        read_deliveries,
        read_quarantine,
        read_raw_record,
    )

    delivery = read_deliveries(args.warehouse).filter(delivery_id=args.delivery)
    if delivery.is_empty():
        return _fail(f"no delivery {args.delivery}", 2)
    info = delivery.row(0, named=True)
    print(f"delivery {info['delivery_id']}: {info['source']}/{info['file_name']} ({info['status']}, "
          f"{info['rows_loaded']} of {info['rows_read']} rows loaded, {info['rows_quarantined']} quarantined)")
    rows = read_quarantine(args.warehouse, status=None, delivery_id=args.delivery)
    if args.line is not None:
        rows = rows.filter(line_number=args.line)
    for line in rows["line_number"].unique(maintain_order=True):
        record = read_raw_record(args.warehouse, args.delivery, line)
        print(f"\nline {line}: " + "; ".join(f"{k}={'' if v is None else v}" for k, v in record.items()))
        for problem in rows.filter(line_number=line).iter_rows(named=True):
            print(f"  [{problem['status']}] {problem['rule']} on {problem['column_name']} = {problem['value']!r}: "
                  f"{problem['rule_description']}" + (f" ({problem['note']})" if problem["note"] else ""))
    return 0


def _quarantine_waive(args: argparse.Namespace) -> int:
    from transforms.ledger.deliveries import LedgerSnapshot
    from transforms.ledger.runs import RunSummary
    from transforms.steward.quarantine import waive
    from warehouse.build import warehouse_write

    warehouse = args.warehouse.resolve()
    # a waiver loads nothing: the marts stay those of the fingerprint the last run built
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run = RunSummary(f"waive-{now:%Y%m%dT%H%M%S}", "(quarantine waive)", str(warehouse), now,
                     LedgerSnapshot.read(warehouse).model_fingerprint)
    try:
        with warehouse_write(warehouse, run) as write:
            count = waive(write.build, args.reason, args.delivery, args.line, args.rule, args.source)
    except ValueError as problem:
        return _fail(str(problem), 2)
    print(f"waived {count} quarantined row problem(s): {args.reason.strip()}")
    return 0


def _quarantine_retry(args: argparse.Namespace) -> int:
    _quiet_prefect(args.verbose)
    from flows.repair import retry_quarantine

    try:
        outcomes = retry_quarantine(warehouse=str(args.warehouse),
                                    reference_dir=str(args.reference) if args.reference else None)
    except Exception as error:
        return _fail(_failure_line(error, args.verbose), 1)
    if not outcomes:
        print("no open quarantined rows")
    for outcome in outcomes:
        print(f"{outcome.source}/{outcome.file_name} (delivery {outcome.delivery_id}): {outcome.released_rows} row(s) "
              f"released, {outcome.still_open_rows} still quarantined" + "".join(f"; {p}" for p in outcome.problems))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from transforms.steward.lineage import explain

    found = explain(args.warehouse, args.indicator, args.scope, args.year)
    if found is None:
        return _fail(f"no {args.indicator} value for {args.scope} in {args.year} in marts.indicator_values", 2)
    shown = "suppressed (disclosure control)" if found["suppressed"] else f"{found['value']} {found['unit']}"
    print(f"{found['indicator']} for {found['level']} {found['scope_id']}, {found['year']}: {shown}")
    print(f"  {found['definition']}")
    if not found["suppressed"]:
        print(f"  numerator {found['numerator']}, denominator {found['denominator']} (measures: {', '.join(found['measures'])})")
    print("  from these deliveries (staged rows of the scope and year):")
    for d in found["deliveries"]:
        print(f"    delivery {d['delivery_id']}: {d['source']}/{d['file_name']}, {d['rows']} row(s), received {d['received_at']:%Y-%m-%d %H:%M}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from transforms.steward.export import export_marts

    for path in export_marts(args.warehouse, args.directory):
        print(path)
    return 0


def _watch_loop(landing: Path, warehouse: Path, interval: float, once: bool, worker=None) -> None:
    """Announce each settled burst of complete new files as one event. With WORKER (serve's warm
    worker), hold them while an ingestion is pending: that run takes them in."""
    from flows.local_stack import announce
    from flows.watch import LandingWatcher

    watcher = LandingWatcher(landing, warehouse, warehouse.with_name(f".{warehouse.name}.watch.json"))
    looks = 0
    while True:
        burst = watcher.poll(hold=worker.ingestion_pending() if worker else False)
        if burst:
            announce(burst, watcher.landing)
            if worker:
                worker.note_announced()
            print(f"announced {', '.join(str(path.relative_to(watcher.landing)) for path in burst)}", flush=True)
        looks += 1
        if once and looks == 2:  # a file counts as complete when two looks agree
            return
        time.sleep(interval)


def _watch(args: argparse.Namespace) -> int:
    if not os.environ.get("PREFECT_API_URL"):
        return _fail("watch needs a Prefect server: set PREFECT_API_URL (boligdata serve does)", 2)
    try:
        _watch_loop(args.landing.resolve(), args.warehouse.resolve(), args.interval, args.once)
    except KeyboardInterrupt:
        pass
    return 0


def _stop_worker(worker) -> None:
    """Ctrl-C: take no further run and let the one in flight finish; a second Ctrl-C abandons it."""
    worker.stop()
    try:
        if worker.current is not None:
            print(f"waiting for flow run {worker.current.name} to finish (Ctrl-C again to abandon it)", flush=True)
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        try:
            worker.abandon_current("boligdata serve was stopped during the run; the warehouse is as the last run left it")
        except Exception:
            pass


def _serve(args: argparse.Namespace) -> int:
    from flows import local_stack

    home = args.prefect_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = local_stack.stack_env(args.port, home, args.landing, args.warehouse)
    log = home / "boligdata-serve.log"
    print(f"starting Prefect on {env['PREFECT_API_URL']} (log: {log})", flush=True)
    server = local_stack.start_server(env, log)
    worker = None
    try:
        local_stack.deploy(env, log)
        # this process runs the flows too (the warm worker): the same settings as the rest of the stack
        os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "BOLIGDATA_"))})
        if not args.verbose:  # the runs' log lines still reach the Prefect UI; this terminal gets one line per run
            os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        if args.alert_webhook:
            local_stack.create_failure_alert(args.alert_webhook)
        else:
            print("no --alert-webhook: failed runs show in the Prefect UI only", flush=True)
        from flows.warm_worker import WarmWorker

        worker = WarmWorker(local_stack.WORK_POOL)
        worker.start()
        while not worker.ready.wait(0.5):
            if not worker.is_alive():
                raise RuntimeError(f"the worker stopped while starting; see {log}")
        print(f"deployments registered, worker ready; watching {args.landing} (Ctrl-C stops)", flush=True)
        _watch_loop(args.landing.resolve(), args.warehouse.resolve(), args.interval, once=False, worker=worker)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if worker:
                _stop_worker(worker)
        finally:
            local_stack.stop(server)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from bench.generate import generate

    rows = generate(args.out, args.scale, args.years, args.bad_share, args.cp1252_share, args.xlsx_share)
    for source, count in rows.items():
        print(f"{source}: {count} rows")
    print(f"landing: {args.out / 'landing'}\nreference: {args.out / 'reference'} (pass it as --reference)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boligdata", description="Indicator pipeline for boligsociale helhedsplaner.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="ingest every new file under LANDING/<source>/, validate, build the marts")
    run.add_argument("--landing", type=Path, required=True, help="folder with one sub-folder per source")
    run.add_argument("--warehouse", type=Path, required=True, help="DuckDB file to create or update")
    run.add_argument("--reference", type=Path, help="reference data folder (default: warehouse/reference)")
    run.add_argument("--archive", type=Path, help="raw file archive (default: <warehouse>_archive beside the file)")
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines")
    run.add_argument("--dask-address", metavar="ADDRESS",
                     help="read, stage and validate on the Dask cluster of this running scheduler, e.g. "
                          "tcp://10.0.0.5:8786 (default: $BOLIGDATA_DASK_ADDRESS; docs/scaling.md)")
    run.add_argument("--dask", choices=("local",),
                     help="read, stage and validate on a local cluster of worker processes started for the run "
                          "(default: $BOLIGDATA_DASK; $BOLIGDATA_DASK_WORKERS of them, one per core by default)")
    run.add_argument("--record-noop", action="store_true",
                     help="run the flow (and record it in Prefect) even when nothing is new "
                          "(default: $BOLIGDATA_RECORD_NOOP=1; otherwise such a run exits early)")
    run.set_defaults(handler=_run)

    show = commands.add_parser("indicators", help="print each indicator's latest year per plan (or area) beside the kommune")
    show.add_argument("--warehouse", type=Path, required=True)
    show.add_argument("--indicator", help="only this catalog id")
    show.add_argument("--level", choices=("plan", "area", "all"), default="plan", help="plans (default), areas, or both")
    show.set_defaults(handler=_indicators, needs_warehouse=True)

    targets = commands.add_parser("targets", help="the agreements' targets: verdicts per plan and year, the latest per target")
    targets.add_argument("--warehouse", type=Path, required=True)
    targets.add_argument("--plan", help="only this plan id")
    targets.set_defaults(handler=_targets, needs_warehouse=True)

    explaining = commands.add_parser("explain", help="a figure's value, numerator/denominator and the deliveries behind it")
    explaining.add_argument("indicator")
    explaining.add_argument("scope", help="area id, plan id, kommune code, landsplan or sub")
    explaining.add_argument("year", type=int)
    explaining.add_argument("--warehouse", type=Path, required=True)
    explaining.set_defaults(handler=_explain, needs_warehouse=True)

    exporting = commands.add_parser("export", help="write the marts (and the indicator catalog) for other tools")
    exporting.add_argument("directory", type=Path)
    exporting.add_argument("--format", choices=("parquet",), default="parquet")
    exporting.add_argument("--warehouse", type=Path, required=True)
    exporting.set_defaults(handler=_export, needs_warehouse=True)

    watching = commands.add_parser("watch", help="announce complete new files under LANDING as boligdata.extract.landed events")
    watching.add_argument("--landing", type=Path, required=True)
    watching.add_argument("--warehouse", type=Path, required=True, help="its ledger says what is already in")
    watching.add_argument("--interval", type=float, default=5.0, help="seconds between looks")
    watching.add_argument("--once", action="store_true", help="look twice, announce, exit")
    watching.set_defaults(handler=_watch)

    serving = commands.add_parser("serve", help="local Prefect server, deployments (prefect.yaml), a warm worker and the watcher")
    serving.add_argument("--landing", type=Path, required=True)
    serving.add_argument("--warehouse", type=Path, required=True)
    serving.add_argument("--port", type=int, default=4200)
    serving.add_argument("--prefect-home", type=Path, default=Path(".prefect"), help="server database and logs")
    serving.add_argument("--alert-webhook", default=os.environ.get("BOLIGDATA_ALERT_WEBHOOK"),
                         help="URL that gets a POST when a run fails (default: $BOLIGDATA_ALERT_WEBHOOK)")
    serving.add_argument("--interval", type=float, default=1.0, help="seconds between looks at LANDING")
    serving.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines of the runs")
    serving.set_defaults(handler=_serve)

    generating = commands.add_parser("generate", help="synthetic contract-conforming extracts (and their reference data)")
    generating.add_argument("out", type=Path)
    generating.add_argument("--scale", choices=("national", "small"), default="national")
    generating.add_argument("--years", type=int, default=10)
    generating.add_argument("--bad-share", type=float, default=0.005, help="share of rows broken on purpose")
    generating.add_argument("--cp1252-share", type=float, default=0.2, help="share of CSV files in Windows-1252")
    generating.add_argument("--xlsx-share", type=float, default=0.2, help="share of housing/municipal files as XLSX")
    generating.set_defaults(handler=_generate)

    deliveries = commands.add_parser("deliveries", help="the ledger: every landed file, its status and reason")
    deliveries.add_argument("--warehouse", type=Path, required=True)
    deliveries.add_argument("--source", help="only this source (landing folder)")
    deliveries.add_argument("--status", choices=("loaded", "loaded_with_quarantine", "rejected", "duplicate", "superseded"))
    deliveries.set_defaults(handler=_deliveries, needs_warehouse=True)

    quarantine = commands.add_parser("quarantine", help="rows held back by validation: list, show, waive, retry")
    actions = quarantine.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="quarantined rows with the rule in plain words")
    listing.add_argument("--warehouse", type=Path, required=True)
    listing.add_argument("--source")
    listing.add_argument("--status", choices=("open", "released", "waived", "all"), default="open")
    listing.add_argument("--rule", help="e.g. unknown_area")
    listing.add_argument("--delivery", type=int)
    listing.set_defaults(handler=_quarantine_list, needs_warehouse=True)
    showing = actions.add_parser("show", help="a delivery's quarantined rows as delivered, with every problem")
    showing.add_argument("delivery", type=int)
    showing.add_argument("line", type=int, nargs="?")
    showing.add_argument("--warehouse", type=Path, required=True)
    showing.set_defaults(handler=_quarantine_show, needs_warehouse=True)
    waiving = actions.add_parser("waive", help="close open rows without loading them, with a reason")
    waiving.add_argument("--warehouse", type=Path, required=True)
    waiving.add_argument("--reason", required=True)
    waiving.add_argument("--delivery", type=int)
    waiving.add_argument("--line", type=int)
    waiving.add_argument("--rule")
    waiving.add_argument("--source")
    waiving.set_defaults(handler=_quarantine_waive, needs_warehouse=True)
    retrying = actions.add_parser("retry", help="check open rows again (after a reference fix) and load what passes")
    retrying.add_argument("--warehouse", type=Path, required=True)
    retrying.add_argument("--reference", type=Path, help="reference data folder (default: warehouse/reference)")
    retrying.add_argument("-v", "--verbose", action="store_true")
    retrying.set_defaults(handler=_quarantine_retry, needs_warehouse=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_warehouse", False) and not args.warehouse.is_file():
        return _fail(f"no warehouse at {args.warehouse}; run `boligdata run` first", 2)
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
