import datetime as dt
import json

import polars as pl
import pytest
from conftest import NOEGLETAL_HEADER, SIGTELSER_HEADER, sigtelser_year, write_extract

from transforms.intake.read import read_text_rows
from transforms.intake.stage import stage_rows
from transforms.intake.validate import (
    SuiteError,
    duplicates_in_delivery,
    ids_in_several_deliveries,
    load_suite,
    validate_rows,
)
from transforms.reference import load_reference
from transforms.sources import all_contracts, contract_for
from transforms.sources.suite import suite_path

TODAY = dt.date(2026, 11, 24)
NOEGLETAL_BROKEN = [
    "2016;330;Motalvej;befolkning;1500;",                  # 2 unknown area (typo)
    "2016;330;Sydbyen;neet_15_29_andel;..;120",            # 3 missing numerator
    "2016;330;Sydbyen;beskaeftigede_18_64_andel;700;650",  # 4 numerator above denominator
    "2016;330;Sydbyen;frivillig_andel;7;100",              # 5 unknown indicator
    "2016;999;Sydbyen;befolkning;1350;",                   # 6 unknown kommune
    "2031;330;Sydbyen;befolkning;1350;",                   # 7 future year
    "2016;330;Landsplan;befolkning;5800000;",              # 8 level this source does not report
    "2016;330;Sydbyen;karakter_9kl_gns;100;0",             # 9 denominator not positive
    "2016;330;Sydbyen;befolkning;-3;",                     # 10 negative
]


def problems_of(tmp_path, source, header, lines):
    contract = contract_for(source)
    text = read_text_rows(write_extract(tmp_path / "f.csv", [header, *lines]), contract).frame
    staged = stage_rows(text, contract, load_reference())
    found = validate_rows(staged.frame, staged.problems, text, contract, load_reference(), TODAY)
    return sorted(found.rows())


def test_every_contract_has_a_suite_whose_rules_name_real_columns():
    for contract in all_contracts().values():
        suite = load_suite(suite_path(contract))
        assert suite.name == contract.source
        columns = {c.name for c in contract.columns}
        for expectation in suite.expectations:
            assert expectation.meta.get("rule"), f"{contract.source}: {expectation.type} has no meta.rule"
            blamed = expectation.meta.get("column") or getattr(expectation, "column", None) or getattr(expectation, "column_A", None)
            if blamed:
                assert blamed in columns, f"{contract.source}: rule {expectation.meta['rule']} blames {blamed}"


def test_clean_rows_pass(tmp_path):
    assert problems_of(tmp_path, "politi_sigtelser", SIGTELSER_HEADER, sigtelser_year(2016, "Motalavej")) == []


def test_gx_does_not_hash_every_row_for_a_batch_fingerprint(tmp_path, monkeypatch):
    """validate.py turns GX's batch fingerprint off through private API (a third of the validation time
    of a large batch); this pins it to the GX version in the lock file."""
    from great_expectations.execution_engine import pandas_execution_engine

    problems_of(tmp_path, "politi_sigtelser", SIGTELSER_HEADER, sigtelser_year(2016, "Motalavej"))  # GX set up
    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", lambda frame: pytest.fail("GX hashed the batch"))
    assert problems_of(tmp_path, "politi_sigtelser", SIGTELSER_HEADER, sigtelser_year(2016, "Motalavej")) == []


SIGTELSER_BROKEN = [
    *sigtelser_year(2016, "Motalavej", afgoerelser=(30, 5, 10)),
    "2016;330;Sydbyen;Straffeloven;30;60;12;",            # persons on a law's row
    "2016;330;Sydbyen;Våbenloven;5;8;;",
    "2016;330;Sydbyen;Lov om euforiserende stoffer;10;20;;",
    "2016;330;Sydbyen;I alt;46;88;;20",                   # not the sum of the laws; no persons
    "2016;330;Sydbyen;Vold;1;1;;",                        # not a law of the list
]


@pytest.mark.parametrize(("source", "header", "lines"), [("kommune_noegletal", NOEGLETAL_HEADER, NOEGLETAL_BROKEN),
                                                         ("politi_sigtelser", SIGTELSER_HEADER, SIGTELSER_BROKEN)])
def test_gx_builds_each_expectation_configuration_once_per_suite_run_and_its_results_stay_its_own(
        tmp_path, monkeypatch, source, header, lines):
    """validate.py has GX build an expectation's configuration once per suite run instead of at every
    read of one of its arguments (private, pinned to the GX in the lock file): the results are those GX
    gives without it, and GX is left as it was. The two suites hold every kind of expectation we use."""
    import contextlib

    from great_expectations.expectations.expectation import Expectation

    from transforms.intake import validate

    contract = contract_for(source)
    text = read_text_rows(write_extract(tmp_path / "f.csv", [header, *lines]), contract).frame
    staged = stage_rows(text, contract, load_reference())
    builds = []
    counted = property(lambda expectation, gx_own=Expectation.__dict__["configuration"]:
                       builds.append(expectation) or gx_own.fget(expectation))
    monkeypatch.setattr(Expectation, "configuration", counted)

    def outcomes():
        builds.clear()
        results = validate._suite_outcomes(staged.frame, contract, load_reference(), TODAY)
        return [result.to_json_dict() for result in results], len(builds)

    once, built_once = outcomes()
    assert Expectation.__dict__["configuration"] is counted  # put back
    with monkeypatch.context() as as_gx_has_it:
        as_gx_has_it.setattr(validate, "_configurations_built_once", contextlib.nullcontext)
        each_time, built_each_time = outcomes()
    assert once == each_time and sum(not result["success"] for result in once) >= 3
    assert 5 * built_once < built_each_time  # kommune_noegletal: 224 and 1,862 for 14 expectations


def test_row_rules_report_line_rule_column_and_delivered_value(tmp_path):
    found = problems_of(tmp_path, "kommune_noegletal", NOEGLETAL_HEADER, NOEGLETAL_BROKEN)
    assert found == [
        (2, "unknown_area", "omraade", "Motalvej"),
        (3, "missing_value", "taeller", ".."),
        (4, "numerator_above_denominator", "taeller", "700"),
        (5, "unknown_indicator", "indikator", "frivillig_andel"),
        (6, "unknown_kommune", "kommunekode", "999"),
        (7, "year_out_of_range", "aar", "2031"),
        (8, "level_not_allowed", "omraade", "Landsplan"),
        (9, "denominator_not_positive", "naevner", "0"),
        (10, "negative_value", "taeller", "-3"),
    ]


def test_a_key_twice_in_one_delivery_quarantines_the_later_copy_only(tmp_path):
    lines = sigtelser_year(2016, "Sydbyen") + ["2016;330;Sydbyen (Slagelse);Våbenloven;1;1;;"]
    found = problems_of(tmp_path, "politi_sigtelser", SIGTELSER_HEADER, lines)
    assert found == [
        (5, "i_alt_sum", "afgoerelser", "45"),  # the extra law row breaks the I alt sum too
        (5, "i_alt_sum", "sigtelser", "88"),
        (6, "duplicate_in_delivery", "omraade", "Sydbyen (Slagelse)"),  # the first (line 3) loads
    ]


def test_ids_repeated_within_a_delivery_are_problems_and_ids_across_deliveries_are_named_for_the_load():
    """In a batch: B twice in delivery 1 is a duplicate there (the later line); A in deliveries 1 and 2
    is not a problem yet (delivery 2 may replace delivery 1's partition), but the load must look."""
    contract = contract_for("politi_anmeldelser")
    staged = pl.DataFrame({"delivery_id": [1, 1, 1, 2, 2, 2], "line_number": [2, 3, 4, 2, 3, 4],
                           "anmeldelses_id": ["A", "B", "B", "A", "C", None]},
                          schema_overrides={"delivery_id": pl.Int32})
    assert duplicates_in_delivery(staged, contract).select("delivery_id", "line_number", "rule", "note").rows() == [
        (1, 4, "duplicate_in_delivery", "already in this delivery at line 3")]
    assert sorted(ids_in_several_deliveries(staged, contract).rows()) == [(1, "A"), (2, "A")]
    assert ids_in_several_deliveries(staged, contract_for("politi_sigtelser")).is_empty()  # no such rule


def test_typing_problems_are_reported_beside_suite_problems(tmp_path):
    found = problems_of(tmp_path, "politi_sigtelser", SIGTELSER_HEADER,
                        ["2016;330;Sydbyen;Straffeloven;tre;6;;", "2016;330;Sydbyen;Vold;1;1;;"])
    assert found == [(2, "type_int", "afgoerelser", "tre"), (3, "value_not_in_set", "lovomraade", "Vold")]


def test_every_failing_row_is_reported_not_a_sample(tmp_path):
    lines = [f"{2000 + i % 20};330;Motalvej{i};befolkning;1;" for i in range(45)]
    found = problems_of(tmp_path, "kommune_noegletal", NOEGLETAL_HEADER, lines)
    assert [line for line, *_ in found] == list(range(2, 47))
    assert {rule for _, rule, _, _ in found} == {"unknown_area"}


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "aar", "min_value": "not a year"}},
         "kommune_noegletal.json: not a valid suite"),
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}},
         "kommune_noegletal.json: expect_column_values_to_not_be_null on no_such_column could not run"),
    ],
)
def test_a_broken_suite_stops_validation_instead_of_passing_rows(tmp_path, monkeypatch, expectation, message):
    suites = tmp_path / "suites"
    suites.mkdir()
    broken = {"name": "kommune_noegletal", "expectations": [{**expectation, "meta": {"rule": "x"}}]}
    (suites / "kommune_noegletal.json").write_text(json.dumps(broken), encoding="utf-8")
    monkeypatch.setattr("transforms.sources.suite.EXPECTATIONS_DIR", suites)
    with pytest.raises(SuiteError, match=message):
        problems_of(tmp_path, "kommune_noegletal", NOEGLETAL_HEADER, ["2016;330;Sydbyen;befolkning;1;"])


def test_the_i_alt_row_must_equal_the_sum_of_the_laws_and_alone_carries_persons(tmp_path):
    lines = [
        *sigtelser_year(2016, "Motalavej", afgoerelser=(30, 5, 10)),
        "2016;330;Sydbyen;Straffeloven;30;60;12;",
        "2016;330;Sydbyen;Våbenloven;5;8;;",
        "2016;330;Sydbyen;Lov om euforiserende stoffer;10;20;;",
        "2016;330;Sydbyen;I alt;46;88;;20",
    ]
    found = problems_of(tmp_path, "politi_sigtelser", SIGTELSER_HEADER, lines)
    assert found == [
        (6, "only_on_i_alt", "sigtede", "12"),
        (9, "i_alt_sum", "afgoerelser", "46"),
        (9, "missing_value", "sigtede", None),
    ]


def test_gx_gets_each_column_in_its_cheapest_form_and_finds_what_it_finds_in_the_text(tmp_path, monkeypatch):
    """GX filters the whole frame once per metric: a column only null checks read (the police reports'
    ids) goes to it as a small number where a value is, a text column only null and set checks read as
    a Categorical. The findings are those of the delivered text; a column any other rule reads (a row
    condition included) goes as it is."""
    from transforms.intake import validate

    missing, membership = validate.MISSING_VALUE_CHECKS, (*validate.MISSING_VALUE_CHECKS, "expect_column_values_to_be_in_set")
    police, noegletal = (load_suite(suite_path(contract_for(source))) for source in ("politi_anmeldelser", "kommune_noegletal"))
    assert validate._read_only_by(police, missing) == {"anmeldelses_id"}
    assert validate._read_only_by(police, membership) == {"anmeldelses_id", "kommunekode", "omraade_key", "scope_level",
                                                          "kategori"}
    assert "indikator" not in validate._read_only_by(noegletal, membership)  # a row condition reads it
    header = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"
    lines = ["A-1;2016-03-01;330;Sydbyen;Vold", ";2016-03-02;330;Sydbyen;Vold", "A-3;;330;Sydbyen;Vold",
             "A-4;2016-03-04;330;Sydbyen;", "A-5;2016-03-05;330;Sydbyen;Slagsmål", "A-6;2016-03-06;330;Nordbyen;Vold"]
    cheapest = problems_of(tmp_path, "politi_anmeldelser", header, lines)
    monkeypatch.setattr(validate, "_as_gx_reads_it", lambda rows, suite: [  # every column as staged, dates as numbers
        validate._as_yyyymmdd(pl.col(c)) if rows.schema[c] == pl.Date else pl.col(c)
        for c in rows.columns if c in validate._suite_columns(suite)])
    assert problems_of(tmp_path, "politi_anmeldelser", header, lines) == cheapest
    assert cheapest == [
        (3, "missing_value", "anmeldelses_id", None),
        (4, "missing_value", "anmeldt_dato", None),
        (5, "missing_value", "kategori", None),
        (6, "value_not_in_set", "kategori", "Slagsmål"),
        (7, "unknown_area", "omraade", "Nordbyen"),
    ]


def test_batches_waiting_for_validation_take_their_turns_in_the_runs_order():
    """The run loads its batches in order, so of the batches waiting for GX the earliest goes first, not
    the thread that happens to wake first; a batch that finds no one ahead goes at once."""
    import threading
    import time

    from transforms.intake.validate import validation_turn

    taken = []

    def validate(order):
        with validation_turn(order):
            taken.append(order)

    with validation_turn(order=7):  # the batch validated now
        threads = [threading.Thread(target=validate, args=(order,)) for order in (3, 1, 2)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)  # waiting in this order
    for thread in threads:
        thread.join(timeout=5)
    assert taken == [1, 2, 3]
    validate(9)  # nobody waiting: its turn at once
    assert taken == [1, 2, 3, 9]
