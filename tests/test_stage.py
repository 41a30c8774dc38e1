import datetime as dt

import polars as pl
import pytest
from conftest import NOEGLETAL_HEADER, SIGTELSER_HEADER, sigtelser_year, write_extract

from transforms.intake.read import RejectedFile, read_text_rows
from transforms.intake.stage import stage_rows
from transforms.reference import load_reference
from transforms.sources import contract_for

SIGTELSER = contract_for("politi_sigtelser")
NOEGLETAL = contract_for("kommune_noegletal")


def stage(tmp_path, lines, contract=NOEGLETAL, header=NOEGLETAL_HEADER):
    rows = read_text_rows(write_extract(tmp_path / "f.csv", [header, *lines]), contract)
    return stage_rows(rows.frame, contract, load_reference())


def test_danish_numbers_are_typed(tmp_path):
    staged = stage(tmp_path, ["2016;330;Sydbyen;karakter_9kl_gns;1.126,8;24", "2016;330;Hele kommunen;befolkning;78.000;"])
    assert staged.frame["taeller"].to_list() == [1126.8, 78000.0]
    assert staged.frame["naevner"].to_list() == [24, None]
    assert staged.problems.is_empty()


def test_missing_markers_are_null_never_zero(tmp_path):
    staged = stage(tmp_path, ["2016;330;Sydbyen;neet_15_29_andel;..;120", "2016;330;Sydbyen;befolkning; ;"])
    assert staged.frame["taeller"].to_list() == [None, None]
    assert staged.problems.is_empty()  # missing is not a type problem; the suite decides if it may be missing


def test_values_that_do_not_fit_their_type_become_row_problems_with_the_delivered_value(tmp_path):
    staged = stage(tmp_path, [
        "2016;330;Sydbyen;befolkning;1350;",
        "2016;330;Sydbyen;befolkning;12.5;",  # a dot is a thousands separator: 12.5 is no Danish number
        "20x6;330;Sydbyen;befolkning;1;",
    ])
    assert staged.problems.sort("line_number").to_dicts() == [
        {"line_number": 3, "rule": "type_decimal", "column_name": "taeller", "value": "12.5"},
        {"line_number": 4, "rule": "type_int", "column_name": "aar", "value": "20x6"},
    ]
    assert staged.frame["taeller"][0] == 1350.0


def test_a_column_with_no_value_of_its_type_rejects_the_file(tmp_path):
    with pytest.raises(RejectedFile, match="column 'Tæller': no value is a number \\(first value 'mange'\\)"):
        stage(tmp_path, ["2016;330;Sydbyen;befolkning;mange;", "2017;330;Sydbyen;befolkning;flere;"])


def test_area_aliases_and_levels_resolve_to_scope_ids(tmp_path):
    staged = stage(tmp_path, [
        "2016;330;Ringparken/Schackenborgvænge;befolkning;1;",
        "2016;330;  RINGPARKEN  (slagelse);befolkning;1;",
        "2016;330;Parkvej og Præstevang;befolkning;1;",
        "2016;330;hele kommunen;befolkning;1;",
        "2016;330;Motalvej;befolkning;1;",
    ])
    assert staged.frame.select("scope_level", "scope_id").rows() == [
        ("area", "ringparken"), ("area", "ringparken"), ("area", "skaelskoer"), ("kommune", "330"), (None, None),
    ]


def test_partition_key_is_kommune_and_year(tmp_path):
    staged = stage(tmp_path, sigtelser_year(2016, "Sydbyen") + sigtelser_year(2017, "Sydbyen", kommune=101),
                   SIGTELSER, SIGTELSER_HEADER)
    assert staged.frame["partition_key"].unique(maintain_order=True).to_list() == ["330|2016", "101|2017"]


def test_xlsx_numbers_are_numeric_cells_or_danish_text(tmp_path):
    raw = pl.DataFrame({"line_number": [2, 3, 4], "aar": ["2016"] * 3, "kommunekode": ["330"] * 3, "omraade": ["Sydbyen"] * 3,
                        "indikator": ["karakter_9kl_gns"] * 3, "taeller": ["126.8", "1.126,8", "12,6,8"], "naevner": ["24"] * 3})
    staged = stage_rows(raw, NOEGLETAL, load_reference(), plain_numbers=True)
    assert staged.frame["taeller"].to_list()[:2] == [pytest.approx(126.8), pytest.approx(1126.8)]
    assert staged.problems.rows() == [(4, "type_decimal", "taeller", "12,6,8")]


def test_date_columns_accept_iso_dates_only():
    from transforms.sources import Column, Contract

    contract = Contract("t", "test", (Column("dato", "Dato", "date", "d"), Column("kommunekode", "Kommunekode", "int", "k"),
                                      Column("omraade", "Område", "text", "o")), partition_by=("kommunekode", "year:dato"))
    raw = pl.DataFrame({"line_number": [2, 3], "dato": ["2016-03-01", "01-03-2016"], "kommunekode": ["330", "330"],
                        "omraade": ["Sydbyen", "Sydbyen"]})
    staged = stage_rows(raw, contract, load_reference())
    assert staged.frame["dato"][0] == dt.date(2016, 3, 1)
    assert staged.frame["partition_key"][0] == "330|2016"
    assert staged.problems.rows() == [(3, "type_date", "dato", "01-03-2016")]


def test_numbers_that_are_not_finite_or_too_large_are_type_errors():
    huge = "1" + "0" * 400
    raw = pl.DataFrame({"line_number": [2, 3, 4, 5], "aar": ["2016"] * 4, "kommunekode": ["330"] * 4,
                        "omraade": ["Motalavej"] * 4, "indikator": ["befolkning"] * 4,
                        "taeller": [huge, "inf", "NaN", "1.500"], "naevner": ["", "", "1000", "99999999999999999999"]},
                       schema_overrides={"line_number": pl.Int64})
    staged = stage_rows(raw, contract_for("kommune_noegletal"), load_reference())
    assert staged.problems.select("line_number", "rule", "column_name").rows() == [
        (2, "type_decimal", "taeller"), (3, "type_decimal", "taeller"), (4, "type_decimal", "taeller"),
        (5, "type_int", "naevner")]
    assert staged.frame.filter(pl.col("taeller").is_infinite()).is_empty()


def test_every_area_spelling_the_spec_lists_is_an_alias():
    """domain.md's Places table: names, 'older documents say ...', 'also spelled ...'."""
    from transforms.reference import load_reference
    from transforms.sources import normalize_label

    scopes = load_reference().scopes_by_label
    spelled = {
        "motalavej": ["Motalavej", "Motalavej (Korsør)"],
        "ringparken": ["Ringparken", "Ringparken (Slagelse)", "Ringparken/Schackenborgvænge", "Ringparken og Schackenborgvænge"],
        "sydbyen": ["Sydbyen", "Sydbyen (Slagelse)"],
        "skaelskoer": ["Skælskør", "Skælskør (Parkvej, Præstevænget)", "Præstevang", "Præstevænget",
                       "Skælskør (Parkvej, Præstevang)", "Parkvej og Præstevang"],
        "amagerbro": ["Amagerbro", "Amagerbro (København)"],
    }
    for area, spellings in spelled.items():
        for spelling in spellings:
            found = scopes.get(normalize_label(spelling))
            assert found is not None and area in str(found), spelling


def test_a_large_file_is_typed_once_per_distinct_value_with_the_same_outcome():
    """From _LOOKUP_FROM_ROWS rows on, each distinct text is typed once and looked up per row: the values,
    the problems and the rows they name are those of typing row by row."""
    from transforms.intake.stage import _LOOKUP_FROM_ROWS

    cycle = {"aar": ["2016", "2017", "20x6", " 2018 ", "2016", "..", "2016"],
             "taeller": ["1.126,8", "12.5", "", "..", "-3", "1" + "0" * 400, "7,25"],
             "naevner": ["24", "1.000", "2,5", " ", "99999999999999999999", "0", "+12"]}
    rows = _LOOKUP_FROM_ROWS + 3
    raw = pl.DataFrame({"line_number": range(2, rows + 2), "kommunekode": ["330"] * rows, "omraade": ["Sydbyen"] * rows,
                        "indikator": ["befolkning"] * rows,
                        **{column: [values[i % len(values)] for i in range(rows)] for column, values in cycle.items()}},
                       schema_overrides={"line_number": pl.Int64}).select("line_number", *(c.name for c in NOEGLETAL.columns))
    looked_up = stage_rows(raw, NOEGLETAL, load_reference())
    row_by_row = stage_rows(raw.head(len(cycle["aar"])), NOEGLETAL, load_reference())
    first_lines = pl.col("line_number") < 2 + len(cycle["aar"])
    assert looked_up.frame.filter(first_lines).equals(row_by_row.frame)
    assert looked_up.problems.filter(first_lines).sort("line_number", "column_name").equals(
        row_by_row.problems.sort("line_number", "column_name"))
    assert row_by_row.problems.select("line_number", "column_name", "value").sort("line_number", "column_name").rows() == [
        (3, "taeller", "12.5"), (4, "aar", "20x6"), (4, "naevner", "2,5"), (6, "naevner", "99999999999999999999"),
        (7, "taeller", "1" + "0" * 400)]
    problems_at = [0, 1, 2, 0, 1, 1, 0]  # per position in the cycle
    assert looked_up.problems.height == sum(problems_at[i % len(problems_at)] for i in range(rows))
