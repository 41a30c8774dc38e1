"""The synthetic national extracts follow the contracts: only the rows broken on purpose fail."""

from conftest import ingest_all, query

from bench.generate import generate, one_new_month


def test_generated_extracts_load_with_only_the_intended_problems(tmp_path):
    rows = generate(tmp_path / "gen", scale="small", years=2, bad_share=0.01, cp1252_share=0.3, xlsx_share=0.3, seed=5)
    assert set(rows) == {"politi_anmeldelser", "politi_sigtelser", "politi_tryghed", "boligorg_afdelinger",
                         "kommune_noegletal", "brand_haendelser"}
    landing, warehouse = tmp_path / "gen" / "landing", tmp_path / "w.duckdb"
    ledger = ingest_all(landing, warehouse, tmp_path / "gen" / "reference")
    assert {row["status"] for row in ledger} <= {"loaded", "loaded_with_quarantine"}
    assert {row["encoding"] for row in ledger} >= {"utf-8", "cp1252", "xlsx"}
    assert query(warehouse, "SELECT DISTINCT rule, value FROM meta.quarantine") == [("unknown_area", "Ukendt område")]
    quarantined = query(warehouse, "SELECT count(*) FROM meta.quarantine")[0][0]
    assert 0.5 * 0.01 * rows["politi_anmeldelser"] < quarantined < 2 * 0.01 * rows["politi_anmeldelser"]
    # synthetic areas and plans reach the marts
    assert query(warehouse, """SELECT count(DISTINCT scope_id) FROM marts.indicator_values
        WHERE level = 'plan' AND starts_with(scope_id, 'plan-')""") == [(6,)]

    month = one_new_month(tmp_path / "gen", scale="small")
    (row,) = ingest_all(landing, warehouse, tmp_path / "gen" / "reference")
    assert (row["file_name"], row["status"]) == (month.name, "loaded")
