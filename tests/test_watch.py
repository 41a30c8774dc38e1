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
