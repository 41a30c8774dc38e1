import subprocess
import sys

import duckdb

from conftest import REPO
from flows.cli import main


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


def test_the_installed_command_runs_the_demo_and_prints_indicators(tmp_path):
    warehouse = tmp_path / "demo.duckdb"
    boligdata = REPO / ".venv" / "bin" / "boligdata"
    command = [str(boligdata)] if boligdata.exists() else [sys.executable, "-m", "flows.cli"]
    run = subprocess.run([*command, "run", "--landing", str(REPO / "demo" / "landing"), "--warehouse", str(warehouse)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "politi_sigtelser/sigtelser_slagelse_2019-2021.csv: loaded (60 of 60 rows loaded)" in lines
    assert "kommune_noegletal/noegletal_slagelse_2019-2021.csv: loaded_with_quarantine (105 of 106 rows loaded, 1 quarantined)" in lines
    assert "Deliveries: 2 (1 loaded, 1 loaded_with_quarantine)" in lines
    assert f"Warehouse: {warehouse}" in lines
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT rule, value FROM meta.quarantine").fetchall() == [("unknown_area", "Motalvej")]

    shown = subprocess.run([*command, "indicators", "--warehouse", str(warehouse)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "afgoerelser_pr_1000" in shown.stdout and "en-faelles-indsats-2021" in shown.stdout and "2021" in shown.stdout
