"""The run's intake on a real Dask cluster: a `dask scheduler` and two `dask worker` processes from the
venv on 127.0.0.1 (free ports), the golden landing run through them with `boligdata run
--dask-address`, the warehouse compared with a run on the thread pool; a worker killed mid-run.

Every process started here is in a process group of its own, killed at the end; the processes carry
a unique value in their environment, and the tests check none of them is left."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import duckdb
import pytest
from test_orphans import MARK, assert_nothing_left, cli

from warehouse.files import internal_file

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
MARTS = ("indicator_values", "indicator_vs_kommune", "development_vs_kommune", "target_status", "targets_without_data")


class Cluster:
    """A scheduler and N workers, each `dask` command in a process group of its own."""

    def __init__(self, folder: Path, mark: str, workers: int = 2, **scheduler_env: str):
        self.folder, self.mark, self.groups = folder, mark, {}
        folder.mkdir(parents=True, exist_ok=True)
        scheduler_file = folder / "scheduler.json"
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(scheduler_file)], scheduler_env)
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for number in range(workers):
            self._start(f"worker-{number}", ["worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                                             "--no-dashboard", "--name", f"worker-{number}"], {})
        self.client().wait_for_workers(workers, timeout=120)

    def _start(self, name: str, args: list[str], env: dict) -> None:
        log = open(self.folder / f"{name}.log", "wb")
        self.groups[name] = subprocess.Popen([str(VENV_BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                             env={**os.environ, MARK: self.mark, **env}, start_new_session=True)

    def client(self):
        from distributed import Client

        if not hasattr(self, "_client"):
            self._client = Client(self.address, timeout=60)
        return self._client

    def tasks_done(self) -> dict[str, int]:
        """Tasks each worker has finished (by worker name)."""
        counts = self.client().run(lambda dask_worker: sum(1 for t in dask_worker.state.log if t[1:3] == ("executing", "memory")))
        names = {address: info["name"] for address, info in self.client().scheduler_info(n_workers=-1)["workers"].items()}
        return {names[address]: count for address, count in counts.items()}

    def kill_worker_at_work(self, timeout: float = 180) -> str | None:
        """SIGKILL the group of the first worker seen running a task (its nanny and its process)."""
        names = {address: info["name"] for address, info in self.client().scheduler_info(n_workers=-1)["workers"].items()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for address, keys in self.client().processing().items():
                if keys:
                    name = str(names[address])
                    os.killpg(self.groups[name].pid, signal.SIGKILL)
                    return name
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        if hasattr(self, "_client"):
            self._client.close()
        for process in self.groups.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        assert_nothing_left(self.mark)


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path / "dask", uuid.uuid4().hex)
    yield started
    started.stop()


def run(landing: Path, warehouse: Path, *extra: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    mark = uuid.uuid4().hex
    process = cli("run", "--landing", str(landing), "--warehouse", str(warehouse), *extra, mark=mark, **env)
    out, err = process.communicate(timeout=timeout)
    assert_nothing_left(mark)  # the run's own processes (Prefect's server, a local cluster) are gone
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def contents(warehouse: Path) -> dict[str, list[tuple]]:
    """What a run leaves that must not depend on where its tasks ran: the marts, the ledger (but its run
    ids, timestamps and archive folder) and the quarantine, from the internal file."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        tables = {name: conn.execute(f"SELECT * FROM marts.{name} ORDER BY ALL").fetchall() for name in MARTS}
        tables["meta.deliveries"] = conn.execute(
            "SELECT * EXCLUDE (run_id, received_at, archive_path), parse_filename(archive_path) "
            "FROM meta.deliveries ORDER BY delivery_id").fetchall()
        tables["meta.quarantine"] = conn.execute("SELECT * EXCLUDE (resolved_at) FROM meta.quarantine ORDER BY ALL").fetchall()
    return tables


@pytest.fixture(scope="module")
def on_threads(golden, tmp_path_factory) -> Path:
    warehouse = tmp_path_factory.mktemp("threads") / "w.duckdb"
    done = run(golden / "landing", warehouse)
    assert done.returncode == 0, done.stderr
    return warehouse


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_golden_run_on_a_dask_cluster_equals_the_run_on_threads(golden, on_threads, cluster, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    done = run(golden / "landing", warehouse, "--dask-address", cluster.address)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "Deliveries: 29 (29 loaded)" in done.stdout.splitlines()
    worked = cluster.tasks_done()
    assert sum(worked.values()) >= 2 * 8 and all(worked.values()), worked  # ingest + validate per batch, on both
    expected, got = contents(on_threads), contents(warehouse)
    assert got.keys() == expected.keys()
    for table in expected:
        assert got[table] == expected[table], table
    assert not list(tmp_path.glob(".w.duckdb.building*")), "the build and its spill are removed"


def test_a_worker_killed_mid_run_costs_a_retry_of_its_task_not_the_run(golden, on_threads, cluster, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    warehouse = tmp_path / "w.duckdb"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run, golden / "landing", warehouse, "--dask-address", cluster.address)
        killed = cluster.kill_worker_at_work()
        done = running.result()
    assert killed is not None
    assert done.returncode == 0, done.stderr  # Dask runs the lost task again on the other worker
    assert contents(warehouse) == contents(on_threads)


def test_a_run_whose_task_dies_with_its_worker_fails_with_one_line_and_publishes_nothing(golden, on_threads, tmp_path):
    # The scheduler gives up on a task at its first lost worker: the run cannot complete.
    cluster = Cluster(tmp_path / "dask", uuid.uuid4().hex, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    try:
        # The last completed run: the golden landing on threads. Then one corrected file lands.
        warehouse = tmp_path / "w.duckdb"
        for made in on_threads.parent.glob("w.*duckdb"):
            shutil.copyfile(made, tmp_path / made.name)
        landing = tmp_path / "landing"
        shutil.copytree(golden / "landing", landing)
        original = landing / "politi_anmeldelser" / "anmeldelser_330_2019.csv"
        (original.parent / "anmeldelser_330_2019_rettet.csv").write_bytes(original.read_bytes() + b"\r\n")
        before = {path.name: digest(path) for path in tmp_path.glob("w.*duckdb")}

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(run, landing, warehouse, "--dask-address", cluster.address)
            killed = cluster.kill_worker_at_work()
            done = running.result()
    finally:
        cluster.stop()
    assert killed is not None
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("boligdata: run failed, warehouse unchanged:"), done.stderr
    assert {path.name: digest(path) for path in tmp_path.glob("w.*duckdb")} == before
    assert not list(tmp_path.glob(".w.duckdb.building*"))


def test_a_run_on_a_cluster_that_lost_every_worker_fails_after_its_grace_and_publishes_nothing(golden, tmp_path):
    """Without a worker the scheduler keeps the lost task queued for ever; the run must not wait for ever."""
    cluster = Cluster(tmp_path / "dask", uuid.uuid4().hex, workers=1)
    try:
        warehouse = tmp_path / "w.duckdb"
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            running = pool.submit(run, golden / "landing", warehouse, "--dask-address", cluster.address,
                                  BOLIGDATA_DASK_NO_WORKER_SECONDS="5")
            killed = cluster.kill_worker_at_work()
            done = running.result()
            waited = time.monotonic() - started
    finally:
        cluster.stop()
    assert killed == "worker-0"
    assert done.returncode == 1, done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"boligdata: run failed, warehouse unchanged: the Dask cluster at {cluster.address} has had no "
                           "worker for 5 s (BOLIGDATA_DASK_NO_WORKER_SECONDS); start workers and run again"), line
    assert waited < 240  # the grace and the run's own start and clean-up, not the test's timeout
    assert not warehouse.exists() and not list(tmp_path.glob(".w.duckdb.building*"))


def test_the_task_runner_is_chosen_by_configuration():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runner import intake_task_runner

    assert isinstance(intake_task_runner({}), ThreadPoolTaskRunner)
    assert intake_task_runner({"BOLIGDATA_TASKS_IN_FLIGHT": "2"})._max_workers == 2
    remote = intake_task_runner({"BOLIGDATA_DASK_ADDRESS": "tcp://127.0.0.1:8786"})
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = intake_task_runner({"BOLIGDATA_DASK": "local", "BOLIGDATA_DASK_WORKERS": "3"})
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"]
    with pytest.raises(ValueError, match="BOLIGDATA_DASK='elsewhere'"):
        intake_task_runner({"BOLIGDATA_DASK": "elsewhere"})


def test_the_spill_folder_can_be_shared_storage(tmp_path, monkeypatch):
    from warehouse.build import spill_dir

    build = tmp_path / "wh" / ".w.duckdb.building"
    assert spill_dir(build) == tmp_path / "wh" / ".w.duckdb.building.spill"
    monkeypatch.setenv("BOLIGDATA_SPILL_DIR", str(tmp_path / "shared"))
    shared = spill_dir(build)
    assert shared.parent == tmp_path / "shared" and shared.name.startswith("w.duckdb.building.")
    assert spill_dir(tmp_path / "other" / ".w.duckdb.building") != shared  # two warehouses, two spills
