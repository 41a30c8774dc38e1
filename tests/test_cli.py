import json
import os
import shutil
import subprocess
import sys

import duckdb
from conftest import REPO, boligdata_command

from flows.cli import main
from transforms.reference import DEFAULT_REFERENCE_DIR
from warehouse.files import internal_file


def test_a_warehouse_path_that_is_a_directory_stops_the_run_with_one_line(tmp_path, capsys):
    (tmp_path / "landing").mkdir()
    assert main(["run", "--landing", str(tmp_path / "landing"), "--warehouse", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"boligdata: --warehouse {tmp_path} is a directory")


def test_a_missing_landing_folder_stops_the_run(tmp_path, capsys):
    assert main(["run", "--landing", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    assert capsys.readouterr().err.strip() == f"boligdata: landing folder {tmp_path / 'nope'} does not exist"
    assert not (tmp_path / "w.duckdb").exists()


def boligdata(*args, timeout=300):
    return subprocess.run([*boligdata_command(), *args], capture_output=True, text=True, timeout=timeout)


def test_a_run_that_cannot_complete_exits_non_zero_with_one_line_and_no_warehouse(tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    (reference / "plans.csv").write_text("plan_id;start_date\nx;someday\n", encoding="utf-8")
    run = boligdata("run", "--landing", str(REPO / "demo" / "landing"), "--warehouse", str(tmp_path / "w.duckdb"),
                    "--reference", str(reference))
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0, run.stderr
    assert run.stderr.startswith(f"boligdata: run failed, warehouse unchanged: reference file {reference / 'plans.csv'}: missing column(s) name")
    assert run.stdout.splitlines()[1:] == []  # stopped before any file was touched
    assert not (tmp_path / "w.duckdb").exists()


def test_the_installed_command_runs_the_demo_and_prints_indicators(tmp_path):
    warehouse = tmp_path / "demo.duckdb"
    run = boligdata("run", "--landing", str(REPO / "demo" / "landing"), "--warehouse", str(warehouse))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "politi_sigtelser/sigtelser_slagelse_2019-2021.csv: loaded (60 of 60 rows loaded)" in lines
    assert "kommune_noegletal/noegletal_slagelse_2019-2021.csv: loaded_with_quarantine (105 of 106 rows loaded, 1 quarantined)" in lines
    assert "boligorg_afdelinger/boligkorsoer_2019-2021.csv: loaded (9 of 9 rows loaded)" in lines
    assert "boligorg_afdelinger/fob_2019-2021.xlsx: loaded (15 of 15 rows loaded)" in lines
    assert "Deliveries: 11 (10 loaded, 1 loaded_with_quarantine)" in lines  # the demo includes own records
    assert f"Warehouse: {warehouse}" in lines
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:  # values stay with the stewards
        assert conn.execute("SELECT rule, value FROM meta.quarantine").fetchall() == [("unknown_area", "Motalvej")]

    shown = boligdata("indicators", "--warehouse", str(warehouse), timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "afgoerelser_pr_1000, 2021 (per_1000)" in shown.stdout.splitlines()
    assert all(len(line) <= 80 for line in shown.stdout.splitlines())
    shown = boligdata("indicators", "--warehouse", str(warehouse), "--format", "json", timeout=120)
    rows = [row for row in json.loads(shown.stdout) if row["indicator"] == "afgoerelser_pr_1000"]
    assert [row["scope_id"] for row in rows] == ["en-faelles-indsats-2021", "slagelse-2017"]
    assert all(row["year"] == 2021 and row["vs_kommune"] == "worse" for row in rows)


def test_a_supervised_run_ends_after_the_exit_handlers_without_pythons_teardown():
    """flows/cli.py: the handlers registered after it (Prefect's, which send the last logs) still run;
    what Python would do after them (here an object's finalizer) does not, and the exit code is the run's."""
    script = ("import atexit, sys\nfrom flows.cli import _ending_without_teardown\n"
              "class Kept:\n    def __del__(self):\n        print('torn down', flush=True)\n"
              "kept = Kept()\nending = _ending_without_teardown()\n"
              "atexit.register(print, 'sent the last logs')\n"
              "print('summary', end='')\nsys.exit(ending(3))\n")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a run's output is, unless set
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=buffered, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "summarysent the last logs\n", "")

    gone = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=buffered, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    gone.stdout.close()  # the reader is gone (`boligdata run ... | head`): the flush fails, quietly
    assert gone.wait(60) == 3
    assert gone.stderr.read() == b""
    gone.stderr.close()


def test_a_run_without_v_hears_nothing_from_prefects_services():
    """Prefect's services log under their class names, outside the "prefect" logger: EventsWorker said
    "Still processing items: 7 items remaining..." after a failed run's one line, when the run ended
    before its events were sent (CI, 2026-11-26). Without -v that reaches no terminal; with -v it does."""
    script = ("import logging, sys\nfrom flows.cli import _quiet_prefect\n_quiet_prefect(verbose=sys.argv[1] == '-v')\n"
              "from prefect.logging.configuration import setup_logging\nsetup_logging()  # as a flow run does\n"
              "logging.getLogger('EventsWorker').warning('Still processing items: 7 items remaining...')\n")
    unset = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING_")}
    quiet, verbose = (subprocess.run([sys.executable, "-c", script, flag], cwd=REPO, env=unset, capture_output=True,
                                     text=True, timeout=120) for flag in ("", "-v"))
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert verbose.returncode == 0 and "WARNING | EventsWorker - Still processing items" in verbose.stderr
