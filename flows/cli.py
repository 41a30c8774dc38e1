"""`boligdata`: the command line for operators, stewards and the README's demo."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import logging
import os
import signal
import sys
import threading
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

# Per indicator, the latest year with data for the most of the plans/areas shown: a year in which only a
# partial delivery exists (one area's figures, so no plan figure) does not hide the last complete year.
INDICATORS_VS_KOMMUNE = """
WITH shown AS (
    SELECT * FROM marts.indicator_vs_kommune
    WHERE ($indicator IS NULL OR indicator = $indicator) AND ($level = 'all' OR level = $level)
      AND (value IS NOT NULL OR suppressed)
), coverage AS (
    SELECT indicator, year, count(DISTINCT level || ':' || scope_id) AS scopes FROM shown GROUP BY ALL
), chosen AS (
    SELECT indicator, arg_max(year, scopes * 10000 + year) AS year FROM coverage GROUP BY indicator
)
SELECT s.indicator, s.level, s.scope_id, s.year, s.value, s.kommune_value AS kommune,
       CASE s.better_than_kommune WHEN true THEN 'better' WHEN false THEN 'worse' END AS vs_kommune,
       s.unit, s.suppressed
FROM shown AS s JOIN chosen USING (indicator, year)
ORDER BY s.indicator, s.level DESC, s.scope_id
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
        # and loggers outside "prefect" (Prefect's own services log under their class names: EventsWorker's
        # "Still processing items" when a run ends before its events are sent)
        os.environ.setdefault("PREFECT_LOGGING_ROOT_LEVEL", "CRITICAL")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # a local cluster's start-up lines


# Faults of the machine, not of the data, named first (DuckDB reports them as text, not errno).
_STORAGE_FAULTS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                   errno.EDQUOT: "the disk quota is used up"}


def _storage_fault(error: BaseException | None) -> str | None:
    while error is not None:
        for number, what in _STORAGE_FAULTS.items():
            if getattr(error, "errno", None) == number or os.strerror(number) in str(error):
                return f"{what} ({os.strerror(number)}); free space or fix the folder, then run again"
        error = error.__cause__ or error.__context__
    return None


def _failure_line(error: Exception, verbose: bool) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if fault := _storage_fault(error):
        reason = f"{fault}: {reason}"
    _release_frames(error)
    # the progress lines above describe the run's private build: say that none of it was published
    return (f"run failed, warehouse unchanged: {reason}; nothing of this run was published"
            + ("" if verbose else " (-v shows details)"))


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
            _print_reference_notes(args.warehouse, args.reference)
            return 0
        return guard.run_supervised(_run_argv(args))  # the run below, in a child that leaks nothing
    ending = _ending_without_teardown()  # registered before Prefect is imported
    return ending(_run_flow(args))


def _ending_without_teardown():
    """For the supervised run: once it has its exit code, the process ends right after the exit handlers
    registered later than this one (Prefect's, which send the last logs and events to its server) have
    run, without Python's teardown of what a run imported (Prefect, GX, pandas): that took 0.9 s of one
    core after the summary was printed. The run's files and DuckDB connections are closed by then, and
    the threads that are not daemons joined. Returns the function that records the exit code."""
    import atexit

    exit_code = []

    def end_now() -> None:
        if exit_code:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):  # a reader gone (`| head`) or a stream closed: nothing to add
                    pass
            os._exit(exit_code[0])

    atexit.register(end_now)  # before Prefect is imported, so that it runs after Prefect's handlers

    def ending(code: int) -> int:
        exit_code.append(code)
        return code
    return ending


def _run_flow(args: argparse.Namespace) -> int:
    """The run itself, in the supervised child."""
    from transforms.ledger.deliveries import hash_landed_files

    # the landed files are hashed while Prefect and GX are imported and the run's server starts (hashlib
    # lets go of the GIL)
    threading.Thread(target=hash_landed_files, args=(args.landing,), name="landing-hash", daemon=True).start()
    _quiet_prefect(args.verbose)
    from flows.pipeline import (
        run_pipeline,  # Prefect's import is slow; keep --help and checks fast
    )
    from flows.prefect_settings import flow_run_settings, prepare_temporary_server
    from transforms.intake import validate

    progress = logging.getLogger("boligdata")
    progress.setLevel(logging.INFO)
    progress.addHandler(logging.StreamHandler(sys.stdout))
    progress.propagate = False  # printed once here, not again through Prefect's console handler
    print(f"boligdata run: {args.landing} -> {args.warehouse}", flush=True)
    # Ctrl-C raises KeyboardInterrupt where it lands; inside a task Prefect may turn it into its own
    # error, so the interruption is remembered here to say what happened either way
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    def on_unraisable(unraisable, print_it=sys.unraisablehook):
        # Ctrl-C that lands in a finalizer is swallowed there (Python prints "Exception ignored in ..."
        # and goes on): deliver it again a moment later, after the finalizer, to stop the run's own code
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and interrupted:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        else:
            print_it(unraisable)

    signal.signal(signal.SIGINT, on_interrupt)
    sys.unraisablehook = on_unraisable
    # GX's import (about 2.5 s of CPU) overlaps the temporary Prefect server's start-up, during which this
    # process mostly waits; the first validation would otherwise pay it after the server is up
    threading.Thread(target=validate.warm_up, name="gx-warm-up", daemon=True).start()
    try:
        with flow_run_settings(), prepare_temporary_server():
            summary = run_pipeline(
                landing=str(args.landing), warehouse=str(args.warehouse),
                reference_dir=str(args.reference) if args.reference else None,
                archive_dir=str(args.archive) if args.archive else None,
            )
    except Exception as error:  # the run could not complete; the warehouse is as the last run left it
        if interrupted:
            return _interrupted(error)
        line = _failure_line(error, args.verbose)
        return _fail(line, 1) if args.verbose else _last_line(line, 1)  # -v: the details, and all that follows
    except KeyboardInterrupt as interrupt:  # Ctrl-C (the supervisor passes it on)
        return _interrupted(interrupt)
    print(summary.render())
    _print_reference_notes(args.warehouse, args.reference)
    return 0


def _interrupted(error: BaseException) -> int:
    _release_frames(error)
    return _last_line("run interrupted, warehouse unchanged", 130)


def _last_line(message: str, code: int) -> int:
    """A run's one line, and nothing after it on stderr: what the process's end prints is no news to the
    operator (task threads still finishing may hold DuckDB handles, which DuckDB's bindings list at exit,
    "nanobind: leaked ..."; Prefect's services may still be sending)."""
    code = _fail(message, code)
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
    return code


def _print_reference_notes(warehouse: Path, given: Path | None) -> None:
    """A shipped default that changed is reported, never applied over the warehouse's own copy."""
    from transforms.reference import changed_defaults, reference_for

    try:
        folder = reference_for(warehouse, given, create=False)
        for change in changed_defaults(folder):
            print(f"Reference data: {change.describe()}")
    except OSError:
        pass


def _indicators(args: argparse.Namespace) -> int:
    import duckdb

    from transforms.steward.tables import emit

    with duckdb.connect(str(args.warehouse), read_only=True) as conn:
        if args.indicator:
            known = [i for (i,) in conn.execute("SELECT indicator FROM ref.indicators ORDER BY 1").fetchall()]
            if args.indicator not in known:
                import difflib

                close = difflib.get_close_matches(args.indicator, known, n=3)
                return _fail(f"no indicator {args.indicator!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + f"; {len(known)} indicators: boligdata indicators --format csv, or SELECT indicator FROM ref.indicators", 2)
        frame = conn.sql(INDICATORS_VS_KOMMUNE, params={"indicator": args.indicator, "level": args.level}).pl()
    rows = frame.to_dicts()
    if args.format != "table" or not rows:
        emit(rows, list(frame.columns), args.format, "no indicator values match")
        return 0
    # a heading per indicator (ids are long), its plans/areas under it: fits 80 columns
    from transforms.steward.tables import to_table

    for (name, year, unit), group in frame.group_by(["indicator", "year", "unit"], maintain_order=True):
        print(f"{name}, {year} ({unit})")
        table = to_table([{**r, "value": "suppressed" if r["suppressed"] else r["value"]} for r in group.to_dicts()],
                         ["scope_id", "value", "kommune", "vs_kommune"], width=76,
                         headers={"scope_id": "område/plan", "vs_kommune": "vs kommune"})
        print("\n".join("    " + line for line in table.splitlines()) + "\n")
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
       actual_value AS actual, target_value AS target, source
FROM marts.target_status AS t
WHERE met IS NOT NULL AND ($plan IS NULL OR plan_id = $plan)
  AND year = (SELECT max(year) FROM marts.target_status AS l
              WHERE l.plan_id = t.plan_id AND l.target_id = t.target_id AND l.scope_id = t.scope_id AND l.met IS NOT NULL)
ORDER BY plan_id, target_id, scope_id
"""


def _targets(args: argparse.Namespace) -> int:
    import duckdb

    from transforms.steward.tables import emit, to_json

    with duckdb.connect(str(args.warehouse), read_only=True) as conn:
        plans = [p for (p,) in conn.execute("SELECT plan_id FROM ref.plans ORDER BY 1").fetchall()]
        if args.plan and args.plan not in plans:
            return _fail(f"no plan {args.plan!r}; plans: {', '.join(plans)}", 2)
        params = {"plan": args.plan}
        summary = conn.sql(TARGETS_SUMMARY, params=params).pl().to_dicts()
        latest = conn.sql(LATEST_VERDICTS, params=params).pl().to_dicts()
        (without,) = conn.execute("SELECT count(*) FROM marts.targets_without_data WHERE $plan IS NULL OR plan_id = $plan",
                                  params).fetchall()[0]
    if args.format == "json":
        print(to_json({"per_plan_and_year": summary, "latest_verdicts": latest, "targets_without_data": without}))
        return 0
    if args.format == "csv":
        emit(latest, list(latest[0]) if latest else ["plan_id", "target_id", "scope_id", "year", "verdict"], "csv", "")
        return 0
    print("Target verdicts per plan and year (marts.target_status):")
    emit(summary, ["plan_id", "year", "met", "not met", "not evaluable"], "table", "no verdicts")
    print("\nLatest verdict of each target (the agreement's section in brackets):")
    shown_target = None
    for row in latest:
        if row["plan_id"] != (shown_target or (None,))[0]:
            print(f"{row['plan_id']}")
        if (row["plan_id"], row["target_id"]) != shown_target:
            print(f"  {row['target_id']} ({row['source']})")
            shown_target = (row["plan_id"], row["target_id"])
        actual = "" if row["actual"] is None else f"{row['actual']:.1f}"
        target = "" if row["target"] is None else f" vs {row['target']:.1f}"
        print(f"      {row['scope_id']} {row['year']}: {row['verdict']}, {actual}{target}")
    print(f"\n{without} agreed target(s) without data yet: SELECT * FROM marts.targets_without_data")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    from transforms.steward.quarantine import StewardError, check_names, read_deliveries
    from transforms.steward.tables import emit

    try:
        check_names(source=args.source)
    except StewardError as problem:
        return _fail(str(problem), 2)
    rows = read_deliveries(args.warehouse, args.source, args.status).to_dicts()
    emit(rows, ["delivery_id", "source", "file_name", "status", "rows_read", "rows_loaded", "rows_quarantined", "reason"]
         if args.format == "table" else list(rows[0]) if rows else ["delivery_id"], args.format, "no deliveries match",
         headers={"delivery_id": "id", "rows_read": "read", "rows_loaded": "loaded", "rows_quarantined": "held"})
    if args.format == "table":  # a warning is a sentence: under the table, whole, not cut to a column
        for row in rows:
            if row.get("warnings"):
                print(f"delivery {row['delivery_id']} ({row['file_name']}): warning: {row['warnings']}")
    return 0


def _quarantine_list(args: argparse.Namespace) -> int:
    from transforms.steward.quarantine import StewardError, check_names, read_quarantine
    from transforms.steward.status import header_of
    from transforms.steward.tables import emit

    try:
        check_names(args.rule, args.source)
        if args.delivery is not None:
            _check_delivery(args.warehouse, args.delivery)
    except StewardError as problem:
        return _fail(str(problem), 2)
    status = None if args.status == "all" else args.status
    rows = read_quarantine(args.warehouse, args.source, status, args.rule, args.delivery).to_dicts()
    for row in rows:
        row["column"] = header_of(row["source"], row["column_name"])
        row["reason"] = row["note"] if row["status"] == "waived" else None  # the waiver's reason
    columns = (["delivery_id", "line_number", "column", "value", "rule", "status", "reason"] if args.format == "table" else
               ["delivery_id", "source", "file_name", "line_number", "column", "column_name", "value", "rule",
                "rule_description", "status", "note", "reason", "resolved_by", "resolved_at"])
    emit(rows, columns, args.format, "no quarantined rows match",
         headers={"delivery_id": "deliv.", "line_number": "line", "reason": "reason / note"})
    return 0


def _check_delivery(warehouse: Path, delivery_id: int) -> None:
    import duckdb

    from transforms.steward.quarantine import check_delivery
    from warehouse.files import internal_file

    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        check_delivery(conn, delivery_id)


def _quarantine_show(args: argparse.Namespace) -> int:
    from transforms.steward.quarantine import (
        StewardError,
        describe_ids,
        read_deliveries,
        read_quarantine,
        read_raw_record,
    )
    from transforms.steward.status import header_of
    from transforms.steward.tables import to_csv, to_json

    try:
        _check_delivery(args.warehouse, args.delivery)
    except StewardError as problem:
        return _fail(str(problem), 2)
    info = read_deliveries(args.warehouse).filter(delivery_id=args.delivery).row(0, named=True)
    rows = read_quarantine(args.warehouse, status=None, delivery_id=args.delivery)
    if args.line is not None:
        lines = rows["line_number"].unique().sort().to_list()
        if args.line not in lines:
            return _fail(f"delivery {args.delivery} has no quarantined line {args.line}; "
                         + (f"its quarantined lines: {describe_ids(lines)}" if lines else "it has no quarantined rows"), 2)
        rows = rows.filter(line_number=args.line)
    shown = []
    for line in rows["line_number"].unique(maintain_order=True):
        problems = [{"rule": p["rule"], "column": header_of(info["source"], p["column_name"]), "column_name": p["column_name"],
                     "value": p["value"], "rule_description": p["rule_description"], "status": p["status"],
                     "note": p["note"], "resolved_by": p["resolved_by"], "resolved_at": p["resolved_at"]}
                    for p in rows.filter(line_number=line).iter_rows(named=True)]
        shown.append({"line_number": line, "as_delivered": read_raw_record(args.warehouse, args.delivery, line),
                      "problems": problems})
    if args.format == "json":
        print(to_json({"delivery": info, "rows": shown}))
        return 0
    if args.format == "csv":
        flat = [{"delivery_id": args.delivery, "line_number": r["line_number"], **p,
                 "as_delivered": "; ".join(f"{k}={'' if v is None else v}" for k, v in r["as_delivered"].items())}
                for r in shown for p in r["problems"]]
        sys.stdout.write(to_csv(flat, ["delivery_id", "line_number", "column", "value", "rule", "status", "rule_description",
                                       "note", "resolved_by", "resolved_at", "as_delivered"]))
        return 0
    print(f"delivery {info['delivery_id']}: {info['source']}/{info['file_name']} ({info['status']}, "
          f"{info['rows_loaded']} of {info['rows_read']} rows loaded, {info['rows_quarantined']} quarantined)")
    if info["status"] == "rejected":
        print(f"rejected: {info['reason']}")
    for row in shown:
        print(f"\nline {row['line_number']}: " + "; ".join(f"{k}={'' if v is None else v}" for k, v in row["as_delivered"].items()))
        for problem in row["problems"]:
            print(f"  [{problem['status']}] {problem['rule']} on {problem['column_name']} = {problem['value']!r}: "
                  f"{problem['rule_description']}" + (f" ({problem['note']})" if problem["note"] else "")
                  + (f" by {problem['resolved_by']}" if problem["resolved_by"] else ""))
    return 0


def _refresh_status(warehouse: Path, reference: Path | None = None) -> None:
    """The standing page, after a command changed what is open (a page that cannot be written is said, not fatal)."""
    from transforms.steward.status import write_status_page

    try:
        write_status_page(warehouse, reference)
    except Exception as problem:  # noqa: BLE001 - the change itself is done and published
        print(f"boligdata: the status page was not refreshed: {problem}", file=sys.stderr)


def _quarantine_waive(args: argparse.Namespace) -> int:
    from transforms.ledger.deliveries import LedgerSnapshot
    from transforms.ledger.runs import RunSummary
    from transforms.steward.quarantine import (
        StewardError,
        check_names,
        dismiss_file,
        read_deliveries,
        waive,
    )
    from warehouse.build import (
        WarehouseUnavailable,
        check_warehouse_path,
        warehouse_write,
    )

    try:
        warehouse = check_warehouse_path(args.warehouse)
        check_names(args.rule, args.source)
        if args.delivery is not None:
            _check_delivery(warehouse, args.delivery)
    except (StewardError, WarehouseUnavailable) as problem:
        return _fail(str(problem), 2)
    dismissing = (args.delivery is not None and args.line is None and args.rule is None and args.source is None
                  and read_deliveries(warehouse).filter(delivery_id=args.delivery)["status"][0] == "rejected")
    # a waiver loads nothing: the marts stay those of the fingerprint the last run built
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run = RunSummary(f"waive-{now:%Y%m%dT%H%M%S}", "(quarantine waive)", str(warehouse), now,
                     LedgerSnapshot.read(warehouse).model_fingerprint)
    try:
        with warehouse_write(warehouse, run) as write:
            if dismissing:
                dismiss_file(write.build, args.delivery, args.reason)
            else:
                count = waive(write.build, args.reason, args.delivery, args.line, args.rule, args.source)
    except ValueError as problem:
        return _fail(str(problem), 2)
    _refresh_status(warehouse)
    if dismissing:
        print(f"rejected file of delivery {args.delivery} closed without a correction: {args.reason.strip()}")
    else:
        print(f"waived {count} quarantined row problem(s): {args.reason.strip()}")
    return 0


def _open_quarantine_count(warehouse: Path) -> int | None:
    """Open quarantine rows, read in plain Python (no Prefect); None when the ledger cannot be read."""
    import duckdb

    from warehouse.files import internal_file

    try:
        with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
            return conn.execute("SELECT count(*) FROM meta.quarantine WHERE status = 'open'").fetchall()[0][0]
    except duckdb.Error:
        return None


def _quarantine_retry(args: argparse.Namespace) -> int:
    from transforms.reference import (
        ReferenceDataError,
        check_reference_tables,
        reference_for,
    )
    from warehouse.build import WarehouseUnavailable, check_warehouse_path

    try:
        warehouse = check_warehouse_path(args.warehouse)
        reference = reference_for(warehouse, args.reference)
        check_reference_tables(reference)
    except (WarehouseUnavailable, ReferenceDataError, OSError) as problem:
        return _fail(str(problem), 2)
    if _open_quarantine_count(warehouse) == 0:  # nothing to retry: no Prefect, no GX (like `run`'s guard)
        if args.format == "json":
            print("[]")
        else:
            print("no open quarantined rows")
        return 0
    _quiet_prefect(args.verbose)
    from flows.prefect_settings import flow_run_settings
    from flows.repair import retry_quarantine

    try:
        with flow_run_settings():
            outcomes = retry_quarantine(warehouse=str(warehouse), reference_dir=str(reference))
    except Exception as error:
        return _fail(_failure_line(error, args.verbose), 1)
    _refresh_status(warehouse, reference)
    if args.format == "json":
        from dataclasses import asdict

        from transforms.steward.tables import to_json

        print(to_json([asdict(o) for o in outcomes]))
        return 0
    if not outcomes:
        print("no open quarantined rows")
    for outcome in outcomes:
        print(f"{outcome.source}/{outcome.file_name} (delivery {outcome.delivery_id}): {outcome.released_rows} row(s) "
              f"released, {outcome.still_open_rows} still quarantined" + "".join(f"; {p}" for p in outcome.problems))
    return 0


def _status(args: argparse.Namespace) -> int:
    from transforms.steward.status import (
        read_status,
        write_status_page,
    )
    from transforms.steward.tables import emit, to_json

    status = read_status(args.warehouse)
    if args.format == "json":
        print(to_json(status.as_dict()))
        return 0
    if args.format == "csv":
        rows = [{"kind": "rejected_file", "delivery_id": r["delivery_id"], "source": r["source"], "file_name": r["file_name"],
                 "since": r["received_at"], "detail": r["reason"]} for r in status.rejected]
        rows += [{"kind": "quarantine", "delivery_id": p["delivery_id"], "source": p["source"], "file_name": p["file_name"],
                  "line_number": p["line_number"], "rule": p["rule"], "column": p["column"], "value": p["value"],
                  "hint": "; ".join(p["hint"]), "since": p["appeared_at"], "detail": p["rule_description"]}
                 for p in status.problems]
        emit(rows, ["kind", "delivery_id", "source", "file_name", "line_number", "rule", "column", "value", "hint", "since",
                    "detail"], "csv", "")
        return 0
    print(f"Open now: {len(status.rejected)} rejected file(s), "
          f"{status.open_rows} quarantined row(s)")
    if status.rejected:
        print("\nRejected files not replaced by a later delivery:")
        emit([{**r, "file": f"{r['source']}/{r['file_name']}"} for r in status.rejected],
             ["delivery_id", "file", "reason"], "table", "", headers={"delivery_id": "id"})
    if status.groups:
        print("\nQuarantined rows by source and rule:")
        emit(status.groups, ["source", "rule", "column", "rows", "deliveries", "since"], "table", "")
        hinted = [p for p in status.problems if p["hint"]]
        if hinted:
            print("\nUnknown names and the closest known ones:")
            emit([{**p, "hint": ", ".join(p["hint"])} for p in hinted],
                 ["delivery_id", "line_number", "column", "value", "hint"], "table", "",
                 headers={"delivery_id": "deliv.", "line_number": "line", "hint": "closest known"})
    for note in status.reference_notes:
        print(f"\nreference data: {note}")
    try:
        page = write_status_page(args.warehouse)
        print(f"\nstatus page: {page}")
    except OSError as problem:
        print(f"\nstatus page not written: {problem}")
    return 0


def _add_alias(warehouse: Path, folder: Path, alias: str, scope_id: str) -> str:
    """reference alias: the edit, recorded through the one write sequence (the marts stay as they are)."""
    from transforms.ledger.deliveries import LedgerSnapshot
    from transforms.ledger.runs import RunSummary
    from transforms.reference import undone_on_failure
    from transforms.steward.quarantine import add_scope_alias
    from warehouse.build import warehouse_write

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run = RunSummary(f"alias-{now:%Y%m%dT%H%M%S}", "(reference alias)", str(warehouse), now,
                     LedgerSnapshot.read(warehouse).model_fingerprint)
    edits = []  # made under the writer lock; put back if the write is not published
    with undone_on_failure(edits), warehouse_write(warehouse, run) as write:
        return add_scope_alias(write.build, folder, alias, scope_id, edits=edits)


def _reference(args: argparse.Namespace) -> int:
    from transforms.reference import (
        ReferenceDataError,
        acknowledge_defaults,
        adopt_defaults,
        changed_defaults,
        check_reference_tables,
        reference_diff,
        reference_for,
    )
    from warehouse.build import WarehouseUnavailable, check_warehouse_path

    try:
        warehouse = check_warehouse_path(args.warehouse)
        folder = reference_for(warehouse)
        if args.ref_action == "path":
            print(folder)
        elif args.ref_action == "diff":
            text = reference_diff(folder)
            print(text.rstrip() if text else f"{folder} holds the shipped defaults unchanged")
            for change in changed_defaults(folder):
                print(f"note: {change.describe()}")
        elif args.ref_action == "check":
            check_reference_tables(folder)
            print(f"{folder}: every reference file reads")
        elif args.ref_action == "alias":
            line = _add_alias(warehouse, folder, args.alias, args.scope_id)
            print(f"added {line} to {folder / 'scope_aliases.csv'}; `boligdata quarantine retry --warehouse "
                  f"{args.warehouse}` loads the rows it held back")
            _refresh_status(warehouse, folder)
        elif args.ref_action in ("adopt", "keep"):
            known = {c.file: c for c in changed_defaults(folder)}
            for name in args.files:
                if name not in known:
                    raise ReferenceDataError(f"{name}: no changed default to {args.ref_action}"
                                             + (f"; changed: {', '.join(known)}" if known else "; no shipped default changed"))
            if args.ref_action == "adopt":
                adopt_defaults(folder, args.files)
                check_reference_tables(folder)
                print(f"took the shipped {', '.join(args.files)} into {folder}")
            else:
                acknowledge_defaults(folder, args.files)
                print(f"kept the local {', '.join(args.files)} in {folder}")
            _refresh_status(warehouse, folder)
    except (WarehouseUnavailable, ReferenceDataError, OSError) as problem:
        return _fail(str(problem), 2)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from transforms.steward import lineage

    if args.report is not None:
        return _explain_reported(args)
    if not args.year.isdigit():
        return _fail(f"year {args.year!r} is not a year (a half-year only with --report)", 2)
    args.year = int(args.year)
    if "/" in args.scope:  # a housing department: ORGANISATION/AFDELING
        found = lineage.explain_department(args.warehouse, args.scope, args.year)
        if found is None:
            return _fail(f"no staged row of department {args.scope} in {args.year}", 2)
        print(f"department {found['department']}, {found['year']} (belongs to area {found['area_id'] or 'none'} that year):")
        for row in found["rows"]:
            values = "; ".join(f"{k}={v}" for k, v in row.items() if k not in ("source", "file_name", "sha256", "partition_key"))
            print(f"  {values}")
            print(f"    from delivery {row['delivery_id']}: {row['source']}/{row['file_name']} (sha256 {row['sha256']}), "
                  f"line {row['line_number']}")
        return 0
    target = lineage.explain_target(args.warehouse, args.indicator, args.scope, args.year)
    if target is not None:
        verdict = {True: "met", False: "not met"}.get(target["met"], "not evaluable")
        print(f"target {target['target_id']} of {target['plan_id']} for {target['level']} {target['scope_id']}, "
              f"{target['year']}: {verdict}")
        print(f"  agreement: {target['source']} ({target['data_source'] or 'no data source named'}): {target['description']}")
        print(f"  rule {target['rule']}" + (f", agreed value {target['agreed_value']}" if target["agreed_value"] is not None else "")
              + (f", reading: {target['reading']}" if target["reading"] else "") + (" (provisional)" if target["provisional"] else ""))
        if target["baseline_year"]:
            shown = "suppressed" if target["baseline_suppressed"] else target["baseline_value"]
            print(f"  baseline {target['baseline_year']}: {shown}")
        print(f"  target value this year: {target['target_value']}; actual: "
              + ("suppressed (judged on the unsuppressed value)" if target["suppressed"] else f"{target['actual_value']}"))
        if target["note"]:
            print(f"  note: {target['note']}")
        args.indicator = target["indicator"]
        print(f"  the actual value, {target['indicator']}:")
    found = lineage.explain(args.warehouse, args.indicator, args.scope, args.year)
    if found is None:
        if target is not None:
            print("    no value in marts.indicator_values")
            return 0
        return _fail(f"no {args.indicator} value (nor target) for {args.scope} in {args.year} in marts.indicator_values", 2)
    shown = "suppressed (disclosure control)" if found["suppressed"] else f"{found['value']} {found['unit']}"
    print(f"{found['indicator']} for {found['level']} {found['scope_id']}, {found['year']}: {shown}")
    print(f"  {found['definition']}")
    if not found["suppressed"]:
        print(f"  numerator {found['numerator']}, denominator {found['denominator']} (measures: {', '.join(found['measures'])})")
    print("  from these deliveries (staged rows of the scope and year):")
    for d in found["deliveries"]:
        print(f"    delivery {d['delivery_id']}: {d['source']}/{d['file_name']}, {d['rows']} row(s), received {d['received_at']:%Y-%m-%d %H:%M}")
        print(f"      sha256 {d['sha256']}, lines {d['line_ranges']}")
    return 0


def _explain_reported(args: argparse.Namespace) -> int:
    from transforms.steward import lineage

    found = lineage.reported(args.warehouse, args.report, args.indicator, args.scope, str(args.year))
    if found is None:
        return _fail(f"no report {args.report}", 2)
    report = found["report"]
    if not found["figures"]:
        return _fail(f"report {args.report} showed no {args.indicator} for {args.scope} in {args.year}", 2)
    print(f"as reported in report {report['report_id']} ({report['plan_id']} {report['period']}, "
          f"{report['created_at']:%Y-%m-%d %H:%M} by {report['created_by']}; {report['pdf_file']} sha256 {report['pdf_sha256']}):")
    for f in found["figures"]:
        shown = "suppressed" if f["suppressed"] else f["value"]
        extra = f", target {f['target_id']}: {f['verdict']}" if f["kind"] == "target" else ""
        print(f"  {f['kind']} {f['indicator']} {f['level']} {f['scope_id']} {f['period']}: {shown}{extra}")
    for d in found["deliveries"]:
        print(f"    delivery {d['delivery_id']}: {d['source']}/{d['file_name']} (sha256 {d['sha256']}, now {d['status']})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from transforms.steward.board_report import ReportError, write_report

    try:
        written = write_report(args.warehouse, args.plan, args.period, args.out)
    except ReportError as problem:
        return _fail(str(problem), 2)
    since = ("the plan's first report" if written.previous_report_id is None else
             f"since report {written.previous_report_id}: {written.revisions} figure(s) revised, "
             f"{written.changed_verdicts} verdict(s) changed")
    print(f"report {written.report_id} ({args.plan}, {args.period}) in {written.seconds:.1f} s, {since}:")
    print(f"  {written.html}")
    print(f"  {written.pdf}")
    return 0


def _reports(args: argparse.Namespace) -> int:
    from transforms.steward.board_report import list_reports
    from transforms.steward.tables import emit

    reports = list_reports(args.warehouse).to_dicts()
    # the table shows what fits 80 columns; json and csv every column
    columns = ["report_id", "plan_id", "period", "pdf_file"] if args.format == "table" else list(reports[0]) if reports else []
    emit(reports, columns, args.format, "no reports yet")
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
    from flows.desk import is_loopback

    if args.desk_port and not is_loopback(args.desk_host) and not (args.desk_expose and args.desk_token):
        return _fail(f"the desk binds {args.desk_host} only with --desk-expose and a --desk-token "
                     "(or $BOLIGDATA_DESK_TOKEN); the default is 127.0.0.1", 2)
    home = args.prefect_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = local_stack.stack_env(args.port, home, args.landing, args.warehouse)
    log = home / "boligdata-serve.log"
    print(f"starting Prefect on {env['PREFECT_API_URL']} (log: {log})", flush=True)
    server = local_stack.start_server(env, log)
    worker = desk = None
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
        if args.desk_port:
            from flows.desk import start_desk
            from transforms.reference import reference_for

            print(f"reference data: {reference_for(args.warehouse.resolve())}", flush=True)
            desk, _ = start_desk(args.warehouse.resolve(), args.desk_host, args.desk_port, args.desk_token, args.desk_expose)
            print(f"the steward's desk: http://{args.desk_host}:{args.desk_port}/", flush=True)
        print(f"deployments registered, worker ready; watching {args.landing} (Ctrl-C stops)", flush=True)
        _watch_loop(args.landing.resolve(), args.warehouse.resolve(), args.interval, once=False, worker=worker)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if worker:
                _stop_worker(worker)
            if desk is not None:
                desk.should_exit = True
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
    run.add_argument("--reference", type=Path, help="reference data folder (default: <warehouse>_reference beside FILE, "
                     "made from warehouse/reference the first time)")
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
    show.add_argument("--format", choices=("table", "json", "csv"), default="table",
                     help="table (default, fits 80 columns, numbers rounded), or json/csv with exact values")
    show.set_defaults(handler=_indicators, needs_warehouse=True)

    targets = commands.add_parser("targets", help="the agreements' targets: verdicts per plan and year, the latest per target")
    targets.add_argument("--warehouse", type=Path, required=True)
    targets.add_argument("--plan", help="only this plan id")
    targets.add_argument("--format", choices=("table", "json", "csv"), default="table",
                     help="table (default, fits 80 columns, numbers rounded), or json/csv with exact values")
    targets.set_defaults(handler=_targets, needs_warehouse=True)

    explaining = commands.add_parser("explain", help="a figure's value, numerator/denominator and the deliveries behind it; "
                                     "a target's verdict; a figure as a report showed it")
    explaining.add_argument("indicator", help="indicator id, or a target id (ref.targets) to explain its verdict")
    explaining.add_argument("scope", help="area id, plan id, kommune code, bydel, landsplan or sub; or a housing "
                                          "department as ORGANISATION/AFDELING")
    explaining.add_argument("year", help="year (2019); with --report also a half-year (2019-H1)")
    explaining.add_argument("--warehouse", type=Path, required=True)
    explaining.add_argument("--report", type=int, help="show the figure as report ID showed it (meta.reported_figures)")
    explaining.set_defaults(handler=_explain, needs_warehouse=True)

    reporting = commands.add_parser("report", help="the board's report for a plan and period: HTML and PDF, recorded as reported")
    reporting.add_argument("--warehouse", type=Path, required=True)
    reporting.add_argument("--plan", required=True, help="plan id (ref.plans)")
    reporting.add_argument("--period", required=True, help="a year (2019) or a half-year (2019-H1)")
    reporting.add_argument("--out", type=Path, required=True, help="folder the HTML and PDF are written to")
    reporting.set_defaults(handler=_report, needs_warehouse=True)

    listing_reports = commands.add_parser("reports", help="the reports written (meta.reports)")
    listing_reports.add_argument("--warehouse", type=Path, required=True)
    listing_reports.add_argument("--format", choices=("table", "json", "csv"), default="table")
    listing_reports.set_defaults(handler=_reports, needs_warehouse=True)

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
    serving.add_argument("--desk-port", type=int, default=4300, help="the steward's desk (default 4300; 0 turns it off)")
    serving.add_argument("--desk-host", default="127.0.0.1",
                         help="address of the desk (default 127.0.0.1); anything else needs --desk-expose and a token")
    serving.add_argument("--desk-expose", action="store_true", help="allow --desk-host other than loopback")
    serving.add_argument("--desk-token", default=os.environ.get("BOLIGDATA_DESK_TOKEN"),
                         help="token every change through the desk must carry (default: $BOLIGDATA_DESK_TOKEN)")
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
    deliveries.add_argument("--format", choices=("table", "json", "csv"), default="table",
                     help="table (default, fits 80 columns, numbers rounded), or json/csv with exact values")
    deliveries.set_defaults(handler=_deliveries, needs_warehouse=True)

    quarantine = commands.add_parser("quarantine", help="rows held back by validation: list, show, waive, retry")
    actions = quarantine.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="quarantined rows with the rule in plain words")
    listing.add_argument("--warehouse", type=Path, required=True)
    listing.add_argument("--source")
    listing.add_argument("--status", choices=("open", "released", "waived", "all"), default="open")
    listing.add_argument("--rule", help="e.g. unknown_area")
    listing.add_argument("--delivery", type=int)
    listing.add_argument("--format", choices=("table", "json", "csv"), default="table",
                     help="table (default, fits 80 columns, numbers rounded), or json/csv with exact values")
    listing.set_defaults(handler=_quarantine_list, needs_warehouse=True)
    showing = actions.add_parser("show", help="a delivery's quarantined rows as delivered, with every problem")
    showing.add_argument("delivery", type=int)
    showing.add_argument("line", type=int, nargs="?")
    showing.add_argument("--warehouse", type=Path, required=True)
    showing.add_argument("--format", choices=("table", "json", "csv"), default="table",
                     help="table (default, fits 80 columns, numbers rounded), or json/csv with exact values")
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
    retrying.add_argument("--reference", type=Path, help="reference data folder (default: <warehouse>_reference beside FILE)")
    retrying.add_argument("-v", "--verbose", action="store_true")
    retrying.add_argument("--format", choices=("table", "json", "csv"), default="table",
                     help="table (default, fits 80 columns, numbers rounded), or json/csv with exact values")
    retrying.set_defaults(handler=_quarantine_retry, needs_warehouse=True)

    status = commands.add_parser("status", help="everything open now: rejected files, quarantined rows by source and rule")
    status.add_argument("--warehouse", type=Path, required=True)
    status.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table (default, fits 80 columns), or json/csv with every value")
    status.set_defaults(handler=_status, needs_warehouse=True)

    reference = commands.add_parser("reference", help="the warehouse's own reference data (<warehouse>_reference)")
    ref_actions = reference.add_subparsers(dest="ref_action", required=True)
    for name, text in (("path", "print the folder (made from the shipped defaults the first time)"),
                       ("diff", "how the folder differs from the shipped defaults (a unified diff)"),
                       ("check", "read every file as a run would")):
        sub = ref_actions.add_parser(name, help=text)
        sub.add_argument("--warehouse", type=Path, required=True)
        sub.set_defaults(handler=_reference)
    aliasing = ref_actions.add_parser("alias", help="add ALIAS, a spelling senders use, for the area or bydel SCOPE_ID "
                                                    "(scope_aliases.csv); then `quarantine retry`")
    aliasing.add_argument("alias", metavar="ALIAS", help="the name as delivered, e.g. Motalvej")
    aliasing.add_argument("scope_id", metavar="SCOPE_ID", help="the area or bydel id it stands for, e.g. motalavej")
    aliasing.add_argument("--warehouse", type=Path, required=True)
    aliasing.set_defaults(handler=_reference, needs_warehouse=True)
    for name, text in (("adopt", "take the changed shipped default FILE(s) into the folder, over local edits"),
                       ("keep", "keep the local FILE(s) and stop reporting the changed shipped default")):
        sub = ref_actions.add_parser(name, help=text)
        sub.add_argument("files", nargs="+", metavar="FILE", help="e.g. scope_aliases.csv")
        sub.add_argument("--warehouse", type=Path, required=True)
        sub.set_defaults(handler=_reference)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_warehouse", False) and not args.warehouse.is_file():
        return _fail(f"no warehouse at {args.warehouse}; run `boligdata run` first", 2)
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        return _fail("interrupted", 130)
    except BrokenPipeError:  # `boligdata ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
