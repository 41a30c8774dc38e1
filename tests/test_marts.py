"""Disclosure control and target evaluation, on small deliveries built here."""

import shutil

import duckdb
import pytest
from conftest import (
    BOLIGORG_HEADER,
    NOEGLETAL_HEADER,
    SIGTELSER_HEADER,
    indicator,
    ingest_all,
    land,
    query,
    sigtelser_year,
)

from transforms.ledger.deliveries import LOADED_STATUSES
from transforms.reference import DEFAULT_REFERENCE_DIR
from warehouse.materialize import materialize


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "landing", tmp_path / "w.duckdb"


def reference_with(tmp_path, **replacements):
    """A copy of the reference data with some files' content replaced."""
    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    for name, text in replacements.items():
        (reference / f"{name}.csv").write_text(text, encoding="utf-8")
    return reference


def share_rows(area, year, numerator, denominator):
    return f"{year};330;{area};uddannelsesparat_9kl_andel;{numerator};{denominator}"


def test_small_person_based_groups_are_suppressed_in_every_mart(paths):
    landing, warehouse = paths
    land(landing, "kommune_noegletal", "n.csv", [
        NOEGLETAL_HEADER,
        share_rows("Motalavej", 2016, 12, 19),      # denominator under 20
        share_rows("Ringparken", 2016, 3, 40),      # numerator 1-4
        share_rows("Sydbyen", 2016, 0, 40),         # 0 is shown
        share_rows("Skælskør", 2016, 30, 40),
        share_rows("Hele kommunen", 2016, 700, 900),
    ])
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej", afgoerelser=(1, 1, 0))])
    ingest_all(landing, warehouse)
    rows = dict((scope, (value, numerator, denominator, suppressed)) for scope, value, numerator, denominator, suppressed in query(
        warehouse, """SELECT scope_id, value, numerator, denominator, suppressed FROM marts.indicator_values
                      WHERE indicator = 'uddannelsesparat_9kl_andel' AND level = 'area'"""))
    assert rows["motalavej"] == (None, None, None, True)
    assert rows["ringparken"] == (None, None, None, True)
    assert rows["sydbyen"] == (0.0, 0.0, 40.0, False)
    assert rows["skaelskoer"] == (75.0, 30.0, 40.0, False)
    # the plan still adds up its areas: (12 + 3 + 0 + 30) / (19 + 40 + 40 + 40)
    assert indicator(warehouse, "uddannelsesparat_9kl_andel", "plan", "slagelse-2017", 2016)[0] == pytest.approx(4500 / 139)
    assert query(warehouse, """SELECT value, kommune_value, difference, better_than_kommune, suppressed
        FROM marts.indicator_vs_kommune WHERE indicator = 'uddannelsesparat_9kl_andel' AND scope_id = 'motalavej'""") == [
        (None, pytest.approx(700 / 9), None, None, True)]
    # counts that are not about persons are never suppressed: 2 decisions stay 2
    assert query(warehouse, """SELECT numerator, suppressed FROM marts.indicator_values
        WHERE indicator = 'afgoerelser_pr_1000' AND scope_id = 'motalavej'""") == [(2.0, False)]


def test_the_disclosure_rule_is_configuration(paths, tmp_path):
    landing, warehouse = paths
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, share_rows("Motalavej", 2016, 12, 19)])
    reference = reference_with(tmp_path, disclosure="setting;value;meaning\nmin_denominator;10;x\n"
                                                     "small_numerator_min;1;x\nsmall_numerator_max;2;x\n")
    ingest_all(landing, warehouse, reference)
    assert query(warehouse, "SELECT value, suppressed FROM marts.indicator_values WHERE indicator = 'uddannelsesparat_9kl_andel'") == [
        (pytest.approx(1200 / 19), False)]


TARGET_HEADER = ("plan_id;target_id;indicator;level;scope_id;rule;target_value;reference_level;reference_scope_id;"
                 "baseline_year;first_year;last_year;description")


def housing_years(moves_by_year):
    """FOB's four Ringparken departments and SAB 3, 100 tenancies each, `moves` move-outs spread evenly."""
    rows = [BOLIGORG_HEADER]
    for year, moves in moves_by_year.items():
        rows += [f"FOB;{n};{year};100;{moves // 5};0;0;0;0;" for n in (23, 24, 26, 32)]
        rows.append(f"Slagelse Almennyttige Boligselskab;3;{year};100;{moves - 4 * (moves // 5)};0;0;0;0;")
    return rows


def test_every_rule_kind_and_a_missing_year(paths, tmp_path):
    landing, warehouse = paths
    # fraflytningsprocent of ringparken: 2016 20 %, 2017 18 %, 2018 missing, 2019 10 %
    land(landing, "boligorg_afdelinger", "fob.csv", housing_years({2016: 100, 2017: 90, 2019: 50}))
    targets = TARGET_HEADER + "\n" + "\n".join([
        "p;fixed-below;fraflytningsprocent;area;ringparken;below;19;;;;2016;2017;x",
        "p;fixed-at-least;fraflytningsprocent;area;ringparken;at_least;18;;;;2017;2017;x",
        "p;over-reference;fraflytningsprocent;area;ringparken;above_reference;;area;ringparken;2017;2019;2019;x",
        "p;at-most-baseline;fraflytningsprocent;area;ringparken;at_most_baseline;;;;2016;2017;2017;x",
        "p;compounded;fraflytningsprocent;area;ringparken;compounded_change;-0.10;;;2016;2017;2019;x",
        "p;yearly;fraflytningsprocent;area;ringparken;yearly_change;-0.10;;;2016;2017;2019;x",
        "p;no-baseline;fraflytningsprocent;area;ringparken;at_most_baseline;;;;2010;2017;2017;x",
    ]) + "\n"
    ingest_all(landing, warehouse, reference_with(tmp_path, targets=targets))
    status = {(t, y): (target, actual, met, note) for t, y, target, actual, met, note in query(warehouse, """
        SELECT target_id, year, round(target_value, 4), actual_value, met, note FROM marts.target_status""")}
    assert status[("fixed-below", 2016)] == (19.0, 20.0, False, None)
    assert status[("fixed-below", 2017)] == (19.0, 18.0, True, None)
    assert status[("fixed-at-least", 2017)] == (18.0, 18.0, True, None)
    assert status[("over-reference", 2019)] == (18.0, 10.0, False, None)
    assert status[("at-most-baseline", 2017)] == (20.0, 18.0, True, None)
    assert status[("compounded", 2017)] == (18.0, 18.0, True, None)
    assert status[("compounded", 2018)] == (16.2, None, None, "no fraflytningsprocent value for 2018 (missing, not zero)")
    assert status[("compounded", 2019)] == (14.58, 10.0, True, None)
    assert status[("yearly", 2017)] == (18.0, 18.0, True, None)
    # 2018 is missing: 2019 is held against 2017 compounded over two years, and says so
    assert status[("yearly", 2019)] == (14.58, 10.0, True, "compared with 2017: 1 year(s) without a value skipped")
    assert status[("no-baseline", 2017)] == (None, 18.0, None, "no baseline value for 2010")


def test_a_suppressed_value_still_gets_its_verdict_and_stays_hidden(paths, tmp_path):
    """The verdict is about the target, not about publishing a small number (domain.md, Targets)."""
    landing, warehouse = paths
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, share_rows("Motalavej", 2018, 12, 19)])
    targets = TARGET_HEADER + "\n" + "\n".join([
        "p;t;uddannelsesparat_9kl_andel;area;motalavej;at_least;50;;;;2018;2018;x",
        "p;u;uddannelsesparat_9kl_andel;area;motalavej;at_least;70;;;;2018;2018;x"]) + "\n"
    ingest_all(landing, warehouse, reference_with(tmp_path, targets=targets))
    note = "value suppressed by disclosure control; the verdict is judged on the unsuppressed value"
    assert query(warehouse, "SELECT target_id, actual_value, met, suppressed, note FROM marts.target_status ORDER BY 1") == [
        ("t", None, True, True, note), ("u", None, False, True, note)]  # 12 of 19 = 63 %


def test_the_agreements_targets_are_all_encoded(paths):
    landing, warehouse = paths
    ingest_all(landing, warehouse)
    targets = query(warehouse, """SELECT plan_id, target_id, count(DISTINCT scope_id) FROM ref.targets
                                  WHERE indicator IS NOT NULL AND NOT starts_with(target_id, 'lbf-') GROUP BY ALL ORDER BY 1, 2""")
    assert targets == [
        ("amagerbro-2018", "henvisninger-stiger-10-pct", 1),
        ("amagerbro-2018", "udsaettelser-hoejst-2016", 1),
        ("amagerbro-2018", "utryghed-hoejst-10-pct-2020", 2),  # Amager Øst and Amager Vest
        ("slagelse-2017", "1-tryghed-over-sub", 2),
        ("slagelse-2017", "1-tryghed-stiger-foreloebigt", 2),
        ("slagelse-2017", "2-fraflytning-falder-10-pct", 5),
        ("slagelse-2017", "3-haervaerk-falder-15-pct", 4),
        ("slagelse-2017", "4-afgoerelser-hoejst-20-i-2021", 1),
        ("slagelse-2017", "4-afgoerelser-omraade", 4),
        ("slagelse-2017", "4-afgoerelser-under-28", 1),  # the four areas combined, not each area
        ("slagelse-2017", "5-paasatte-brande-falder-10-pct", 1),
        ("slagelse-2017", "6-faerre-paa-kontanthjaelp", 1),
        ("slagelse-2017", "6-kun-grundskole-falder", 1),
        ("slagelse-2017", "6-uddannelsesparate-stiger", 1),
        ("slagelse-2017", "7-aktive-foraeldre-mindst-30", 1),
        ("slagelse-2017", "7-arbejdsgrupper-mindst-4", 1),
        ("slagelse-2017", "7-beboere-gode-historie-mindst-15", 1),
        ("slagelse-2017", "7-deltagere-mindst-300", 1),
        ("slagelse-2017", "7-foraeldregrupper-4", 1),
        ("slagelse-2017", "7-frivillige-mindst-50", 1),
        ("slagelse-2017", "7-hjemmeside-10000-i-2018", 1),
        ("slagelse-2017", "7-hjemmeside-stiger-8-pct", 1),
        ("slagelse-2017", "7-negative-historier-falder-10-pct", 1),
        ("slagelse-2017", "7-positive-historier-mindst-5", 1),
        ("slagelse-2017", "7-temaaftener-brand-mindst-8", 1),
    ]
    assert query(warehouse, "SELECT count(*) FROM ref.targets WHERE starts_with(target_id, 'lbf-')") == [(9,)]
    # every target names the agreement it comes from
    assert query(warehouse, "SELECT count(*) FROM ref.targets WHERE source IS NULL") == [(0,)]
    assert query(warehouse, "SELECT DISTINCT met, note IS NOT NULL FROM marts.target_status") == [(None, True)]  # no data yet
    # with no delivery, every agreed target is listed as without data: none is dropped
    assert query(warehouse, "SELECT count(*) FROM marts.targets_without_data") == query(
        warehouse, "SELECT count(*) FROM (SELECT DISTINCT plan_id, target_id, scope_id FROM ref.targets)")


def test_shipped_targets_are_judged_in_their_plans_own_years_only():
    """Baseline years are references, never verdicts: every target window lies inside its plan."""
    import polars as pl

    from transforms.reference import read_reference_table

    plans = read_reference_table(DEFAULT_REFERENCE_DIR, "plans")
    targets = read_reference_table(DEFAULT_REFERENCE_DIR, "targets").join(plans, on="plan_id")
    first_own_year = pl.when((pl.col("start_date").dt.month() == 1) & (pl.col("start_date").dt.day() == 1)).then(
        pl.col("start_date").dt.year()).otherwise(pl.col("start_date").dt.year() + 1)
    outside = targets.filter((pl.col("first_year") < first_own_year) | (pl.col("last_year") > pl.col("end_date").dt.year()))
    assert outside.select("plan_id", "target_id").rows() == []


def test_a_run_with_current_reference_data_rebuilds_only_the_marts(paths):
    """The flow passes only_marts when the model fingerprint is unchanged: new rows count, ref stays."""
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, "2016;330;Sydbyen;befolkning;1000;"])
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "afgoerelser_pr_1000", "area", "sydbyen", 2016) == (45.0, 45.0, 1000.0)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("UPDATE staging.politi_sigtelser SET afgoerelser = afgoerelser * 2")
        conn.execute("COMMENT ON TABLE ref.areas IS 'not reloaded'")
    materialize(warehouse, DEFAULT_REFERENCE_DIR, only_marts=True)
    assert indicator(warehouse, "afgoerelser_pr_1000", "area", "sydbyen", 2016) == (90.0, 90.0, 1000.0)
    assert query(warehouse, "SELECT comment FROM duckdb_tables() WHERE schema_name = 'ref' AND table_name = 'areas'") == [
        ("not reloaded",)]


def test_a_model_that_changed_kind_replaces_what_an_earlier_build_left(paths):
    """core.measures was a view in warehouses built before it became a table."""
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    ingest_all(landing, warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("DROP TABLE core.measures")
        conn.execute("CREATE VIEW core.measures AS SELECT 1 AS left_by_an_earlier_build")
    materialize(warehouse, DEFAULT_REFERENCE_DIR)
    assert query(warehouse, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'core' AND table_name = 'measures'") == [(1,)]
    assert query(warehouse, "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'core' AND view_name = 'measures'") == [(0,)]
    assert indicator(warehouse, "afgoerelser_pr_1000", "area", "sydbyen", 2016) is not None


MODEL_TABLES = ("core.measures", "core.indicator_figures", "core.disclosure", "marts.indicator_values",
                "marts.indicator_vs_kommune", "marts.development_vs_kommune", "marts.target_status", "marts.targets_without_data")


def _tables(warehouse):
    return {name: query(warehouse, f"SELECT * FROM {name} ORDER BY ALL") for name in MODEL_TABLES}


def test_marts_built_for_the_years_a_run_touched_equal_marts_built_whole(golden, tmp_path, model_builds):
    """Three runs: most of the golden landing, then a new year of police reports and a year of housing
    figures, then a correction of an earlier year. After each, the incremental build equals a whole one."""
    later = {"politi_anmeldelser/anmeldelser_330_2019.csv", "boligorg_afdelinger/vibo_2018.csv",
             "boligorg_afdelinger/dab_2018.csv"}
    landing = tmp_path / "landing"
    for path in sorted((golden / "landing").rglob("*.*")):
        name = str(path.relative_to(golden / "landing"))
        if name not in later:
            (landing / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, landing / name)
    incremental, whole = tmp_path / "inc.duckdb", tmp_path / "whole.duckdb"
    ingest_all(landing, incremental)

    corrected = landing / "politi_anmeldelser" / "anmeldelser_330_2016_rettet.csv"
    lines = (landing / "politi_anmeldelser" / "anmeldelser_330_2016.csv").read_text(encoding="utf-8").splitlines()
    # 2016 is slagelse-2017's baseline year: development_vs_kommune compares every year with it
    rounds = [(later, {2018, 2019}, True), ({"politi_anmeldelser/anmeldelser_330_2016_rettet.csv"}, {2016}, False)]
    for files, years, baselines_kept in rounds:
        if corrected.name in str(files):
            corrected.write_text("\n".join(lines[:-40]) + "\n", encoding="utf-8")  # 40 reports fewer
        else:
            for name in files:
                shutil.copyfile(golden / "landing" / name, landing / name)
        rows = ingest_all(landing, incremental, build_marts=False)
        model_builds.clear()
        materialize(incremental, DEFAULT_REFERENCE_DIR, only_marts=True,
                    loaded_deliveries=[r["delivery_id"] for r in rows if r["status"] in LOADED_STATUSES])
        by_year = {name for name, built_years in model_builds if built_years == tuple(sorted(years))}
        assert {"core.measures", "core.disclosure", "marts.indicator_values", "marts.indicator_vs_kommune"} <= by_year
        assert ("marts.development_vs_kommune" in by_year) == baselines_kept
        whole.unlink(missing_ok=True)
        ingest_all(landing, whole)
        assert _tables(incremental) == _tables(whole)


def test_a_partial_build_is_whole_when_a_source_first_delivers_for_a_plan_as_such(golden, tmp_path, model_builds):
    """Whether a plan's figure is summed from its areas depends on every year (partition_guard)."""
    landing = tmp_path / "landing"
    shutil.copytree(golden / "landing", landing, ignore=shutil.ignore_patterns("indsats_registreringer"))
    incremental, whole = tmp_path / "inc.duckdb", tmp_path / "whole.duckdb"
    ingest_all(landing, incremental)
    shutil.copytree(golden / "landing" / "indsats_registreringer", landing / "indsats_registreringer")
    rows = ingest_all(landing, incremental, build_marts=False)
    model_builds.clear()
    materialize(incremental, DEFAULT_REFERENCE_DIR, only_marts=True, loaded_deliveries=[r["delivery_id"] for r in rows])
    assert ("core.measures", (2018, 2019, 2020)) in model_builds  # what the run touched, by year
    assert ("core.indicator_figures", None) in model_builds and ("marts.indicator_values", None) in model_builds
    ingest_all(landing, whole)
    assert _tables(incremental) == _tables(whole)


TARGET_HEADER_2 = TARGET_HEADER + ";reading;provisional;source"


def test_rising_falling_readings_and_development_against_the_kommune(paths, tmp_path):
    landing, warehouse = paths
    land(landing, "kommune_noegletal", "n.csv", [
        NOEGLETAL_HEADER,
        share_rows("Motalavej", 2016, 50, 100), share_rows("Motalavej", 2018, 70, 100),
        share_rows("Sydbyen", 2016, 60, 100), share_rows("Sydbyen", 2018, 55, 100),
        share_rows("Hele kommunen", 2016, 600, 1000), share_rows("Hele kommunen", 2018, 650, 1000),
    ])
    targets = TARGET_HEADER_2 + "\n" + "\n".join([
        "slagelse-2017;rising;uddannelsesparat_9kl_andel;area;motalavej;rising_vs_baseline;;;;2016;2018;2018;x;;false;t",
        "slagelse-2017;falling;uddannelsesparat_9kl_andel;area;sydbyen;falling_vs_baseline;;;;2016;2018;2018;x;;true;t",
        "slagelse-2017;dev;uddannelsesparat_9kl_andel;area;motalavej;development_vs_kommune;;;;2016;2018;2018;x;;false;t",
        "slagelse-2017;dev;uddannelsesparat_9kl_andel;area;sydbyen;development_vs_kommune;;;;2016;2018;2018;x;;false;t",
        "slagelse-2017;fixed-ref;uddannelsesparat_9kl_andel;area;sydbyen;above_reference;;kommune;330;2016;2018;2018;x;baseline_year;false;t",
        "slagelse-2017;same-year-ref;uddannelsesparat_9kl_andel;area;sydbyen;above_reference;;kommune;330;2016;2018;2018;x;same_year;false;t",
        # 2016 is before the plan: a baseline, never a verdict, whatever the row says
        "slagelse-2017;before;uddannelsesparat_9kl_andel;area;motalavej;at_least;10;;;;2016;2018;x;;false;t",
    ]) + "\n"
    ingest_all(landing, warehouse, reference_with(tmp_path, targets=targets))
    status = {(t, s): (round(target, 2), met, note, reading) for t, s, target, met, note, reading in query(warehouse, """
        SELECT target_id, scope_id, target_value, met, note, reading FROM marts.target_status""")}
    assert status[("rising", "motalavej")] == (50.0, True, None, None)
    assert status[("falling", "sydbyen")] == (60.0, True, "provisional target (see reading)", None)
    assert status[("dev", "motalavej")] == (5.0, True, None, None)  # +20 points against the kommune's +5
    assert status[("dev", "sydbyen")] == (5.0, False, None, None)  # -5 points against +5
    assert status[("fixed-ref", "sydbyen")] == (60.0, False, None, "the kommune level 330 of 2016")
    assert status[("same-year-ref", "sydbyen")] == (65.0, False, None, "the kommune level 330 of each evaluated year")
    assert query(warehouse, "SELECT DISTINCT year FROM marts.target_status WHERE target_id = 'before'") == [(2018,)]
    assert query(warehouse, """SELECT round(change, 1), round(kommune_change, 1), developed_better_than_kommune
        FROM marts.development_vs_kommune WHERE scope_id = 'motalavej' AND year = 2018""") == [(20.0, 5.0, True)]


def test_a_sum_of_grades_is_not_a_head_count(paths):
    """The small-numerator rule counts persons; a sum of grades of 25 pupils is published, 12 pupils are not."""
    landing, warehouse = paths
    land(landing, "kommune_noegletal", "n.csv", [
        NOEGLETAL_HEADER,
        "2018;330;Motalavej;karakter_9kl_gns;4;25",  # 25 pupils, grades summing to 4
        "2018;330;Sydbyen;karakter_9kl_gns;70;12",  # 12 pupils: too few
    ])
    ingest_all(landing, warehouse)
    assert query(warehouse, """SELECT scope_id, value, suppression FROM marts.indicator_values
        WHERE indicator = 'karakter_9kl_gns' AND level = 'area' ORDER BY 1""") == [
        ("motalavej", 4 / 25, None), ("sydbyen", None, "primary")]


def test_a_plans_figure_is_the_exact_sum_of_its_areas(paths):
    """Summed as doubles, the areas' 0,1 + 0,1 + 0,1 + 0,9 is 1.2000000000000002 one after another and 1.2
    in pairs, as threads may add them; the same deliveries must give the same figure in every build."""
    landing, warehouse = paths
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER] + [
        f"2018;330;{area};karakter_9kl_gns;{grades};25"
        for area, grades in [("Motalavej", "0,1"), ("Ringparken", "0,1"), ("Sydbyen", "0,1"), ("Skælskør", "0,9")]])
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "karakter_9kl_gns", "plan", "slagelse-2017", 2018) == (1.2 / 100, 1.2, 100)
