"""`boligdata`: the command line for operators, stewards and the README's demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
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


def _run(args: argparse.Namespace) -> int:
    from transforms.warehouse_file import WarehouseUnavailable, check_warehouse_path

    if not args.landing.is_dir():
        return _fail(f"landing folder {args.landing} does not exist", 2)
    try:
        check_warehouse_path(args.warehouse)
    except WarehouseUnavailable as problem:
        return _fail(str(problem), 2)
    if not args.verbose:  # our own progress lines only; a failure still ends in one line below
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    from flows.pipeline import run_pipeline  # Prefect's import is slow; keep --help and checks fast

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
    except Exception as error:  # the run could not complete; the warehouse is as the last run left it
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        _release_frames(error)
        return _fail(f"run failed, warehouse unchanged: {reason}" + ("" if args.verbose else " (-v shows details)"), 1)
    print(summary.render())
    return 0


def _indicators(args: argparse.Namespace) -> int:
    import duckdb

    if not args.warehouse.is_file():
        return _fail(f"no warehouse at {args.warehouse}; run `boligdata run` first", 2)
    with duckdb.connect(str(args.warehouse), read_only=True) as conn:
        table = conn.sql(INDICATORS_VS_KOMMUNE, params={"indicator": args.indicator, "level": args.level})
        table.show(max_rows=200, max_width=200)
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
    run.set_defaults(handler=_run)

    show = commands.add_parser("indicators", help="print each indicator's latest year per plan (or area) beside the kommune")
    show.add_argument("--warehouse", type=Path, required=True)
    show.add_argument("--indicator", help="only this catalog id")
    show.add_argument("--level", choices=("plan", "area", "all"), default="plan", help="plans (default), areas, or both")
    show.set_defaults(handler=_indicators)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
