"""Each contract's conventions end to end through the plain-function pipeline (no Prefect)."""

import time

import pytest
from conftest import (
    BOLIGORG_HEADER,
    NOEGLETAL_HEADER,
    indicator,
    ingest_all,
    land,
    query,
)

TRYGHED_HEADER = "År;Kommunekode;Område;Andel trygge (%);Andel utrygge (%);Respondenter"
ANMELDELSER_HEADER = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"
BRAND_HEADER = "Hændelses-ID;Dato;Kommunekode;Område;Hændelsestype"


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "landing", tmp_path / "w.duckdb"


def test_housing_file_in_cp1252_with_leading_zeros_and_organisation_spelled_otherwise(paths):
    landing, warehouse = paths
    land(landing, "boligorg_afdelinger", "korsoer.csv", [
        BOLIGORG_HEADER,
        "Boligkorsør;015;2016;300;30;2;766;16;61.872,50;890",
        "BOLIGKORSØR;021;2016;250;20;1;762;13;40.963,00;..",
        "BoligKorsør;035;2016;250;25;0;700;1;1.000,00;",
        "BoligKorsør;099;2016;10;1;0;0;0;0;",
    ], encoding="cp1252")
    (row,) = ingest_all(landing, warehouse)
    assert (row["encoding"], row["status"], row["rows_loaded"]) == ("cp1252", "loaded_with_quarantine", 3)
    assert query(warehouse, "SELECT line_number, rule, column_name, value FROM meta.quarantine") == [
        (5, "unknown_department", "afdeling", "099")]
    assert query(warehouse, "SELECT DISTINCT organisation FROM staging.boligorg_afdelinger") == [("BoligKorsør",)]
    assert query(warehouse, "SELECT afdeling, haervaerksudgift, ventelistetal FROM staging.boligorg_afdelinger ORDER BY 1") == [
        (15, 61872.5, 890), (21, 40963.0, None), (35, 1000.0, None)]
    assert indicator(warehouse, "fraflytningsprocent", "area", "motalavej", 2016) == (75 / 800 * 100, 75.0, 800.0)
    assert indicator(warehouse, "udsaettelser", "area", "motalavej", 2016) == (None, None, None)  # 3 households: suppressed
    value, numerator, denominator = indicator(warehouse, "tomgang_pct", "area", "motalavej", 2016)
    assert (numerator, denominator) == (2228.0, 800 * 366)  # 2016 has 366 days


def test_housing_xlsx_with_department_numbers_as_text(paths):
    from openpyxl import Workbook

    landing, warehouse = paths
    book = Workbook()
    sheet = book.active
    sheet.append(BOLIGORG_HEADER.split(";"))
    for number, moves in (("023", 10), ("024", 20), ("026", 30), ("032", 40)):
        sheet.append(["FOB", number, 2016, 100, moves, 1, 10, 2, 1234.5, None])
    sheet.append(["Slagelse Almennyttige Boligselskab", 3, 2016, 100, 50, 0, 0, 0, 0, 0])
    (landing / "boligorg_afdelinger").mkdir(parents=True)
    book.save(landing / "boligorg_afdelinger" / "fob.xlsx")
    (row,) = ingest_all(landing, warehouse)
    assert (row["encoding"], row["status"], row["rows_loaded"]) == ("xlsx", "loaded", 5)
    assert indicator(warehouse, "fraflytningsprocent", "area", "ringparken", 2016) == (30.0, 150.0, 500.0)
    assert indicator(warehouse, "haervaerk_udgift_pr_lejemaal", "area", "ringparken", 2016)[0] == pytest.approx(4 * 1234.5 / 500)


def test_department_membership_follows_its_validity(paths):
    """Schackenborgvænge (SAB 3) leaves Ringparken on 2021-09-30: in for 2021 (a member on 1 July), out for 2022."""
    landing, warehouse = paths
    rows = [BOLIGORG_HEADER]
    for year in (2021, 2022):
        rows += [f"FOB;{n};{year};100;10;0;0;0;0;" for n in (23, 24, 26, 32)]
        rows.append(f"Slagelse Almennyttige Boligselskab;3;{year};100;60;0;0;0;0;")
    land(landing, "boligorg_afdelinger", "ringparken.csv", rows)
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "fraflytningsprocent", "area", "ringparken", 2021) == (20.0, 100.0, 500.0)
    assert indicator(warehouse, "fraflytningsprocent", "area", "ringparken", 2022) == (10.0, 40.0, 400.0)


def test_an_area_needs_every_member_departments_figures(paths):
    landing, warehouse = paths
    land(landing, "boligorg_afdelinger", "fob.csv", [BOLIGORG_HEADER, "FOB;23;2016;100;10;0;0;0;0;"])
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "fraflytningsprocent", "area", "ringparken", 2016) is None


def test_survey_shares_combine_by_respondents_and_national_levels_stand_alone(paths):
    landing, warehouse = paths
    land(landing, "politi_tryghed", "t.csv", [
        TRYGHED_HEADER,
        "2016;330;Motalavej;60,0;20,0;100",
        "2016;330;Ringparken;70,0;..;300",
        "2016;330;Sydbyen;80,0;10,0;100",
        "2016;330;Skælskør;90,0;5,0;100",
        "2016;330;Hele kommunen;86,0;6,0;1200",
        "2016;;Landsplan;89,1;;",
        "2016;;SUB-gennemsnit;72,4;..;",
    ])
    (row,) = ingest_all(landing, warehouse)
    assert row["status"] == "loaded"
    # (60*100 + 70*300 + 80*100 + 90*100) / 600, not the plain mean 75
    assert indicator(warehouse, "tryghed_andel", "plan", "slagelse-2017", 2016)[0] == pytest.approx(44000 / 600)
    assert indicator(warehouse, "tryghed_andel", "national", "landsplan", 2016) == (89.1, None, None)
    assert indicator(warehouse, "tryghed_andel", "national", "sub", 2016) == (72.4, None, None)
    assert indicator(warehouse, "utryghed_andel", "area", "ringparken", 2016) is None  # missing, never 0
    assert indicator(warehouse, "utryghed_andel", "plan", "slagelse-2017", 2016) is None  # one area missing
    assert indicator(warehouse, "utryghed_andel", "area", "motalavej", 2016)[0] == pytest.approx(20.0)
    assert query(warehouse, "SELECT DISTINCT partition_key FROM staging.politi_tryghed ORDER BY 1") == [
        ("330|2016",), ("national|2016",)]
    assert query(warehouse, """SELECT national_value, kommune_value FROM marts.indicator_vs_kommune
        WHERE indicator = 'tryghed_andel' AND scope_id = 'motalavej' AND year = 2016""") == [(89.1, 86.0)]


def test_a_national_correction_leaves_the_kommune_partition(paths):
    landing, warehouse = paths
    now = time.time()
    land(landing, "politi_tryghed", "t.csv", [TRYGHED_HEADER, "2016;330;Hele kommunen;86,0;6,0;1200",
                                              "2016;;Landsplan;89,1;;"], mtime=now - 10)
    ingest_all(landing, warehouse)
    land(landing, "politi_tryghed", "landsplan_rettet.csv", [TRYGHED_HEADER, "2016;;Landsplan;88,0;;"], mtime=now)
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "tryghed_andel", "national", "landsplan", 2016)[0] == 88.0
    assert indicator(warehouse, "tryghed_andel", "kommune", "330", 2016)[0] == pytest.approx(86.0)


def test_survey_rules(paths):
    landing, warehouse = paths
    land(landing, "politi_tryghed", "t.csv", [
        TRYGHED_HEADER,
        "2016;330;Motalavej;60,0;50,0;100",   # 2 shares add up to more than 100
        "2016;330;Ringparken;70,0;10,0;",     # 3 an area without respondents
        "2016;;Sydbyen;70,0;10,0;100",        # 4 an area without kommune
    ])
    ingest_all(landing, warehouse)
    assert query(warehouse, "SELECT line_number, rule, column_name, value FROM meta.quarantine ORDER BY 1") == [
        (2, "shares_above_100", "andel_utrygge", "50,0"),
        (3, "missing_value", "respondenter", None),
        (4, "missing_value", "kommunekode", None),
    ]


def test_events_count_per_area_with_zeros_and_kommune_totals_all_rows(paths):
    landing, warehouse = paths
    land(landing, "brand_haendelser", "brand.csv", [
        BRAND_HEADER,
        "B1;2016-03-01;330;Ringparken;Påsat brand",
        "B2;2016-05-01;330;Ringparken (Slagelse);Påsat brand",
        "B3;2016-05-02;330;Motalavej;Bilbrand",
        "B4;2016-06-01;330;;Påsat brand",
        "B5;2015-06-01;330;;Containerbrand",
    ])
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "paasatte_brande", "area", "ringparken", 2016) == (2.0, 2.0, None)
    assert indicator(warehouse, "paasatte_brande", "area", "sydbyen", 2016) == (0.0, 0.0, None)  # covered year, no arson
    assert indicator(warehouse, "paasatte_brande", "area", "sydbyen", 2015) == (0.0, 0.0, None)
    assert indicator(warehouse, "paasatte_brande", "kommune", "330", 2016) == (3.0, 3.0, None)
    assert indicator(warehouse, "paasatte_brande", "plan", "slagelse-2017", 2016) == (2.0, 2.0, None)
    assert indicator(warehouse, "paasatte_brande", "area", "ringparken", 2017) is None  # no file covers 2017
    assert indicator(warehouse, "paasatte_brande", "area", "amagerbro", 2016) is None  # another kommune


def test_police_reports_partition_by_month_and_count_per_1000(paths):
    landing, warehouse = paths
    now = time.time()
    land(landing, "politi_anmeldelser", "2016.csv", [
        ANMELDELSER_HEADER,
        "A1;2016-01-10;330;Motalavej;Hærværk",
        "A2;2016-01-11;330;Motalavej;Vold",
        "A3;2016-02-01;330;Motalavej;Hærværk",
        "A4;2016-02-02;330;;Hærværk",
    ], mtime=now - 10)
    land(landing, "kommune_noegletal", "befolkning.csv", [NOEGLETAL_HEADER, "2016;330;Motalavej;befolkning;1.000;",
                                                          "2016;330;Hele kommunen;befolkning;80.000;"])
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "haervaerk_anmeldelser", "area", "motalavej", 2016)[0] == 2.0
    assert indicator(warehouse, "anmeldelser_pr_1000", "area", "motalavej", 2016)[0] == 3.0
    assert indicator(warehouse, "anmeldelser_pr_1000_haervaerk", "kommune", "330", 2016) == (3 / 80, 3.0, 80000.0)
    # January is corrected: February stays as it was
    land(landing, "politi_anmeldelser", "2016-01_rettet.csv", [ANMELDELSER_HEADER, "A1;2016-01-10;330;Motalavej;Vold"],
         mtime=now)
    ingest_all(landing, warehouse)
    assert query(warehouse, "SELECT anmeldelses_id, delivery_id FROM staging.politi_anmeldelser ORDER BY 1") == [
        ("A1", 3), ("A3", 1), ("A4", 1)]
    assert indicator(warehouse, "haervaerk_anmeldelser", "area", "motalavej", 2016)[0] == 1.0


def test_event_rules(paths):
    landing, warehouse = paths
    land(landing, "politi_anmeldelser", "a.csv", [
        ANMELDELSER_HEADER,
        "A1;2016-01-10;330;Motalavej;Hærværk",
        "A1;2016-01-11;330;Motalavej;Vold",          # 3 repeats line 2's id (line 2 loads)
        "A3;2099-01-01;330;Motalavej;Vold",          # 4 future date
        "A4;2016-01-01;330;Hele kommunen;Vold",      # 5 kommune totals are all rows, not a row
        "A5;2016-01-01;330;Motalavej;Cykeltyveri",   # 6 category outside the set
        "A6;10-01-2016;330;Motalavej;Vold",          # 7 not an ISO date
    ])
    ingest_all(landing, warehouse)
    assert query(warehouse, "SELECT line_number, rule, column_name, value FROM meta.quarantine ORDER BY 1, 2") == [
        (3, "duplicate_in_delivery", "anmeldelses_id", "A1"),
        (4, "date_out_of_range", "anmeldt_dato", "2099-01-01"),
        (5, "level_not_allowed", "omraade", "Hele kommunen"),
        (6, "value_not_in_set", "kategori", "Cykeltyveri"),
        (7, "type_date", "anmeldt_dato", "10-01-2016"),
    ]


def test_a_department_outside_its_membership_period_is_quarantined(paths):
    landing, warehouse = paths
    land(landing, "boligorg_afdelinger", "sab.csv", [
        BOLIGORG_HEADER,
        "Slagelse Almennyttige Boligselskab;3;2021;100;60;0;0;0;0;",
        "Slagelse Almennyttige Boligselskab;3;2022;100;60;0;0;0;0;",  # sold 2021-09-30: no area in 2022
        "Slagelse Almennyttige Boligselskab;I alt;2021;100;60;0;0;0;0;",  # a total row
        "Ukendt Boligselskab;1;2021;100;60;0;0;0;0;",
        "Slagelse Almennyttige Boligselskab;3;20210;100;60;0;0;0;0;",  # a year no calendar has
    ])
    ingest_all(landing, warehouse)
    assert query(warehouse, "SELECT line_number, rule, column_name, value FROM meta.quarantine ORDER BY 1, 2, 3") == [
        (3, "unknown_department", "afdeling", "3"),
        (4, "type_int", "afdeling", "I alt"),
        (5, "unknown_department", "afdeling", "1"),
        (5, "unknown_organisation", "boligorganisation", "Ukendt Boligselskab"),
        (6, "unknown_department", "afdeling", "3"),
        (6, "year_out_of_range", "aar", "20210"),
    ]


INDSATS_HEADER = "Plan;Område;Periode;Måling;Værdi;Kommentar"


def test_own_records_periods_add_up_to_the_year_and_bad_rows_are_quarantined(paths):
    landing, warehouse = paths
    land(landing, "indsats_registreringer", "egne.csv", [
        INDSATS_HEADER,
        "slagelse-2017;;2018-H1;frivillige;30;forår",
        "Boligsocial Helhedsplan for Skælskør, Korsør og Slagelse;;2018-H2;frivillige;25;the plan by its name",
        "slagelse-2017;Motalavej;2019-Q1;positive_historier;1;",
        "slagelse-2017;Motalavej;2019-Q2;positive_historier;2;",
        "slagelse-2017;Motalavej;2019-Q3;positive_historier;1;",  # Q4 missing: no 2019 figure yet
        "slagelse-2017;;2019;hjemmeside_besoeg;11.000;Danish thousands",
        "ukendt-plan;;2019;frivillige;10;",
        "slagelse-2017;Motalvej;2019;frivillige;10;",
        "slagelse-2017;;2019-H3;frivillige;10;",
        "slagelse-2017;;2019;likes;10;",
        "slagelse-2017;;2020;frivillige;-4;",
    ])
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_loaded"], row["rows_quarantined"]) == ("loaded_with_quarantine", 6, 5)
    assert query(warehouse, "SELECT line_number, rule, column_name, value FROM meta.quarantine ORDER BY 1") == [
        (8, "unknown_plan", "plan", "ukendt-plan"),
        (9, "unknown_area", "omraade", "Motalvej"),
        (10, "type_period", "periode", "2019-H3"),
        (11, "unknown_measure", "maaling", "likes"),
        (12, "negative_value", "vaerdi", "-4"),
    ]
    assert indicator(warehouse, "frivillige", "plan", "slagelse-2017", 2018) == (55.0, 55.0, None)
    assert indicator(warehouse, "hjemmeside_besoeg", "plan", "slagelse-2017", 2019) == (11000.0, 11000.0, None)
    assert indicator(warehouse, "positive_historier", "area", "motalavej", 2019) is None  # three quarters only


def test_a_kommune_survey_reports_bydele(paths):
    landing, warehouse = paths
    land(landing, "kommune_tryghed", "kbh.csv", [
        "År;Kommunekode;Område;Andel trygge (%);Andel utrygge (%);Respondenter",
        "2020;101;Amager Øst;83,5;8,5;1150",
        "2020;101;Amager Vest;78,0;12,0;1080",
        "2020;101;Hele kommunen;84,0;8,0;13500",
        "2020;101;Amager Nord;80,0;10,0;900",
    ], encoding="cp1252")
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_loaded"]) == ("loaded_with_quarantine", 3)
    assert query(warehouse, "SELECT rule, value FROM meta.quarantine") == [("unknown_area", "Amager Nord")]
    assert indicator(warehouse, "utryghed_andel", "bydel", "amager-vest", 2020)[0] == pytest.approx(12.0)
    assert indicator(warehouse, "tryghed_andel", "bydel", "amager-oest", 2020)[0] == pytest.approx(83.5)
    # the kommune's own survey never adds up with the police's: its kommune row stays apart
    assert indicator(warehouse, "tryghed_andel", "kommune", "101", 2020) is None
    assert query(warehouse, "SELECT count(*) FROM core.measures WHERE measure = 'kommune_tryghed_trygge'") == [(1,)]


def test_plans_count_their_own_departments_in_every_year(paths):
    """Schackenborgvænge (SAB 3) left before en-faelles-indsats-2021 started: in none of its years."""
    landing, warehouse = paths
    rows = [BOLIGORG_HEADER]
    for year in (2018, 2022):
        rows += [f"FOB;{n};{year};100;10;0;0;0;0;" for n in (23, 24, 26, 32, 34)]
        rows += [f"BoligKorsør;{n};{year};100;10;0;0;0;0;" for n in (15, 21, 35)]
        rows += [f"Slagelse Boligselskab;12;{year};100;10;0;0;0;0;", f"Slagelse Almennyttige Boligselskab;3;{year};100;50;0;0;0;0;"]
    land(landing, "boligorg_afdelinger", "alle.csv", rows)
    ingest_all(landing, warehouse)
    # 2018: Ringparken counts SAB 3 (a member then), the new plan does not; slagelse-2017 does
    assert indicator(warehouse, "fraflytningsprocent", "area", "ringparken", 2018)[1:] == (90.0, 500.0)
    assert indicator(warehouse, "fraflytningsprocent", "plan", "en-faelles-indsats-2021", 2018)[1:] == (90.0, 900.0)
    assert indicator(warehouse, "fraflytningsprocent", "plan", "slagelse-2017", 2018) is None  # Skælskør not delivered
    assert indicator(warehouse, "fraflytningsprocent", "plan", "en-faelles-indsats-2021", 2022)[1:] == (90.0, 900.0)
