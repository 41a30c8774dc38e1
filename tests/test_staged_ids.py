"""The staged ids' hashes a process keeps between loads (warehouse/staged_ids.py): always a superset of
what staging holds, carried from one write to the next only while the internal file is the one this
process published."""

import os
import time

import duckdb
import numpy as np
import pytest
from conftest import land, query

from flows.pipeline import run_pipeline
from warehouse import staged_ids
from warehouse.files import internal_path

HEADER = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"


def _hashes(*ids: str) -> np.ndarray:
    with duckdb.connect() as conn:
        return np.array([conn.execute(f"SELECT {staged_ids.id_hash('?')}", [i]).fetchall()[0][0] for i in ids],
                        dtype=np.uint64)


def _staged_among(conn, build, *ids: str) -> set[str]:
    found = staged_ids.possibly_staged(conn, build, "s", "t", "id", _hashes(*ids))
    return {i for i, h in zip(ids, _hashes(*ids)) if h in found}


def test_a_build_reads_its_staged_ids_once_and_counts_every_incoming_id_as_staged(tmp_path):
    build, internal = tmp_path / ".w.duckdb.building", tmp_path / "w.internal.duckdb"
    with duckdb.connect(str(build)) as conn:
        conn.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('A'), ('B')) AS v(id)")
        staged_ids.building(build, internal)
        assert _staged_among(conn, build, "B", "C") == {"B"}
        conn.execute("DELETE FROM t")  # not read again: what a load brought stays counted (a superset)
        assert _staged_among(conn, build, "A", "C", "D") == {"A", "C"}
        for batch in range(2 * staged_ids.MAX_CHUNKS):  # the chunks of many batches, merged on the way
            _staged_among(conn, build, f"E{batch}")
        assert _staged_among(conn, build, "E0", "E15", "F") == {"E0", "E15"}
        staged_ids.forget(build)  # e.g. a retry released rows: read again
        assert _staged_among(conn, build, "A", "C") == set()
        staged_ids.finished(build)
        conn.execute("INSERT INTO t VALUES ('G')")
        assert _staged_among(conn, build, "G") == {"G"}  # no write declared this build: read every time
        conn.execute("DELETE FROM t")
        assert _staged_among(conn, build, "G") == set()


def test_what_a_process_published_carries_over_only_while_the_file_is_unchanged(tmp_path):
    build, internal = tmp_path / ".w.duckdb.building", tmp_path / "w.internal.duckdb"
    with duckdb.connect(str(build)) as conn:
        conn.execute("CREATE TABLE t (id VARCHAR)")
    staged_ids.building(build, internal)
    with duckdb.connect(str(build)) as conn:
        assert _staged_among(conn, build, "H") == set()  # H held back, say: counted all the same
    os.replace(build, internal)
    staged_ids.published(build, internal)

    for changed in (False, True):
        if changed:  # another process's write, or anyone's: the file is not the one published
            time.sleep(0.05)  # a modification time of its own
            with duckdb.connect(str(internal)) as conn:
                conn.execute("CREATE TABLE u (x INTEGER)")
        staged_ids.building(build, internal)
        with duckdb.connect(str(internal)) as conn:
            assert _staged_among(conn, build, "H") == (set() if changed else {"H"})
        staged_ids.finished(build)


@pytest.mark.usefixtures("prefect_server")
def test_a_duplicate_id_is_found_in_served_runs_and_after_another_process_changed_the_warehouse(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    now = time.time()
    land(landing, "politi_anmeldelser", "jan.csv", [HEADER, "A1;2016-01-10;330;Motalavej;Vold"], mtime=now - 30)
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    land(landing, "politi_anmeldelser", "feb.csv", [HEADER, "A1;2016-02-10;330;Motalavej;Vold",
                                                    "A2;2016-02-11;330;Motalavej;Vold"], mtime=now - 20)
    internal = internal_path(warehouse)
    assert staged_ids._PUBLISHED[internal].identity == staged_ids._identity(internal)  # kept warm between runs
    run_pipeline(landing=str(landing), warehouse=str(warehouse))  # A1 found among the hashes carried over
    # another process loads B1 (here: written into the internal file directly)
    with duckdb.connect(str(internal)) as conn:
        conn.execute("INSERT INTO staging.politi_anmeldelser SELECT * REPLACE ('B1' AS anmeldelses_id, 99 AS delivery_id) "
                     "FROM staging.politi_anmeldelser LIMIT 1")
    land(landing, "politi_anmeldelser", "mar.csv", [HEADER, "B1;2016-03-10;330;Motalavej;Vold",
                                                    "C1;2016-03-11;330;Motalavej;Vold"], mtime=now - 10)
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    assert query(internal, "SELECT d.file_name, q.value, q.note FROM meta.quarantine AS q JOIN meta.deliveries AS d "
                            "USING (delivery_id) WHERE q.rule = 'duplicate_id' ORDER BY 1, 2") == [
        ("feb.csv", "A1", "already loaded by delivery 1, line 2"),
        ("mar.csv", "B1", "already loaded by delivery 99, line 2")]
