from pathlib import Path

from conftest import SIGTELSER_HEADER, ingest_all, sigtelser_year, write_extract

from flows.watch import LandingWatcher


def test_a_file_is_announced_once_when_it_has_stopped_growing(tmp_path):
    landing, warehouse, state = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "watch.json"
    watcher = LandingWatcher(landing, warehouse, state)
    path = write_extract(landing / "politi_sigtelser" / "s.csv", [SIGTELSER_HEADER])
    assert watcher.poll() == []  # first sight: maybe still being written
    with open(path, "a", encoding="utf-8") as growing:
        growing.write("\r\n".join(sigtelser_year(2016, "Sydbyen")) + "\r\n")
    assert watcher.poll() == []  # it grew: not complete yet
    assert watcher.poll() == [path.resolve()]
    assert watcher.poll() == []  # announced once


def test_temporary_names_are_never_announced(tmp_path):
    landing = tmp_path / "landing"
    watcher = LandingWatcher(landing, tmp_path / "w.duckdb", tmp_path / "watch.json")
    for name in ("s.csv.part", ".s.csv", "~$s.xlsx", "s.csv.tmp"):
        write_extract(landing / "politi_sigtelser" / name, [SIGTELSER_HEADER])
    assert watcher.poll() == [] and watcher.poll() == []


def test_a_restarted_watcher_announces_neither_what_it_announced_nor_what_the_ledger_has(tmp_path):
    landing, warehouse, state = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "watch.json"
    loaded = write_extract(landing / "politi_sigtelser" / "loaded.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    ingest_all(landing, warehouse)
    announced = write_extract(landing / "politi_sigtelser" / "announced.csv", [SIGTELSER_HEADER, *sigtelser_year(2017, "Sydbyen")])
    first = LandingWatcher(landing, warehouse, state)
    first.poll()
    assert first.poll() == [announced.resolve()]  # loaded.csv is in the ledger already

    restarted = LandingWatcher(landing, warehouse, state)
    restarted.poll()
    assert restarted.poll() == []
    # a corrected file under the same name is new bytes: announced again
    write_extract(loaded, [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen", afgoerelser=(1, 1, 1))])
    restarted.poll()
    assert restarted.poll() == [loaded.resolve()]


def test_a_burst_is_announced_once_it_has_settled_and_not_while_an_ingestion_is_pending(tmp_path):
    landing, warehouse, state = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "watch.json"
    watcher = LandingWatcher(landing, warehouse, state)
    first = [write_extract(landing / "politi_sigtelser" / f"{year}.csv", [SIGTELSER_HEADER, *sigtelser_year(year, "Sydbyen")])
             for year in (2016, 2017)]
    assert watcher.poll() == []  # first sight
    late = write_extract(landing / "politi_sigtelser" / "2018.csv", [SIGTELSER_HEADER, *sigtelser_year(2018, "Sydbyen")])
    assert watcher.poll() == []  # 2016 and 2017 are complete, but 2018 is new: the burst has not settled
    assert watcher.poll(hold=True) == []  # settled, but an ingestion is pending: it will take them in
    assert not state.exists()  # held files are not recorded as announced (a restart looks at them again)
    assert watcher.poll() == [p.resolve() for p in (*first, late)]  # one burst
    assert watcher.poll() == []


def test_files_an_ingestion_took_in_while_they_were_held_are_not_announced(tmp_path):
    landing, warehouse, state = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "watch.json"
    watcher = LandingWatcher(landing, warehouse, state)
    taken = write_extract(landing / "politi_sigtelser" / "2016.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    assert watcher.poll(hold=True) == [] and watcher.poll(hold=True) == []
    ingest_all(landing, warehouse)  # the pending run takes the file in
    assert watcher.poll() == []  # no announcement, so no idle run
    assert LandingWatcher(landing, warehouse, state).poll() == []
    del taken


def test_held_files_are_announced_after_max_hold_seconds_even_if_the_landing_never_settles(tmp_path):
    landing = tmp_path / "landing"
    watcher = LandingWatcher(landing, tmp_path / "w.duckdb", tmp_path / "watch.json", max_hold_seconds=0)
    ready = write_extract(landing / "politi_sigtelser" / "2016.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    watcher.poll()
    write_extract(landing / "politi_sigtelser" / "growing.csv", [SIGTELSER_HEADER])
    assert watcher.poll(hold=True) == [ready.resolve()]


def test_a_landed_file_is_read_once_per_version_for_its_hash(tmp_path, monkeypatch):
    """The watcher and every run hash the landed files; a file is read again only when it changed, even
    when a tool puts its modification time back (the change time moves), and every time while it
    changed recently (writes within one clock tick share their times)."""
    import hashlib
    import os
    import time

    from transforms import file_versions
    from transforms.file_versions import RECENT_CHANGE_NS
    from transforms.ledger import deliveries

    def clock_at(ns):  # the clock, faked: how long ago the file changed decides
        monkeypatch.setattr(file_versions, "time_ns", lambda: ns)

    path = tmp_path / "s.csv"
    path.write_bytes(b"a;b\r\n1;2\r\n")
    first, reads = hashlib.sha256(b"a;b\r\n1;2\r\n").hexdigest(), deliveries._sha256_of_version.cache_info().misses
    clock_at(os.stat(path).st_ctime_ns + RECENT_CHANGE_NS // 2)
    assert deliveries.sha256_of(path) == first
    assert deliveries._sha256_of_version.cache_info().misses == reads  # changed recently: not remembered
    clock_at(os.stat(path).st_ctime_ns + RECENT_CHANGE_NS + 1)
    for _ in range(3):
        assert deliveries.sha256_of(path) == first
    assert deliveries._sha256_of_version.cache_info().misses == reads + 1  # read once
    changed = os.stat(path)
    while os.stat(path).st_ctime_ns == changed.st_ctime_ns:  # the next tick of the file system's clock
        time.sleep(0.001)
        os.utime(path, ns=(changed.st_atime_ns, changed.st_mtime_ns))
    path.write_bytes(b"a;b\r\n3;4\r\n")  # same size
    os.utime(path, ns=(changed.st_atime_ns, changed.st_mtime_ns))  # and the modification time put back
    clock_at(os.stat(path).st_ctime_ns + RECENT_CHANGE_NS + 1)
    assert deliveries.sha256_of(path) == hashlib.sha256(b"a;b\r\n3;4\r\n").hexdigest()


def test_the_landing_hashed_during_start_up_is_what_the_run_plans_with(tmp_path, monkeypatch):
    """`boligdata run` hashes the landed files while Prefect starts (hash_landed_files); the run's plan,
    which resolves the folder, then reads none of them again, whichever way the folder was typed."""
    import hashlib
    import os

    from transforms import file_versions
    from transforms.file_versions import RECENT_CHANGE_NS
    from transforms.ledger import deliveries

    monkeypatch.chdir(tmp_path)
    landed = write_extract(tmp_path / "landing" / "politi_sigtelser" / "2016.csv",
                           [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    monkeypatch.setattr(file_versions, "time_ns", lambda: os.stat(landed).st_ctime_ns + RECENT_CHANGE_NS + 1)
    deliveries.hash_landed_files(Path("landing"))
    reads = deliveries._sha256_of_version.cache_info().misses
    ledger = deliveries.LedgerSnapshot(next_delivery_id=1, seen=frozenset(), loaded_sha={})
    (planned,) = deliveries.plan_deliveries(Path("landing").resolve(), ledger)
    assert planned.sha256 == hashlib.sha256(landed.read_bytes()).hexdigest()
    assert deliveries._sha256_of_version.cache_info().misses == reads
