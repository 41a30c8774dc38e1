"""Declaration -> Great Expectations suite. The suites are real GX suites, written as generated,
versioned files (expectations/<source>.json) so stewards and reviewers can read every rule; validation
reads those files, and a test fails when one is out of step with its declaration.

    python -m transforms.sources.suite      # rewrite expectations/*.json from the declarations
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from transforms.sources import Check, Column, Contract, all_contracts, in_reference

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"

# What Område may name, per set of levels a source reports: (missing, unknown, level) in plain words.
_LEVEL_WORDS = {
    ("area",): ("", "Område must be a known area or alias (reference data), or empty",
                "Område is an area or empty (outside every area); kommune totals are all rows of the kommune"),
    ("area", "kommune"): ("Område must name an area or Hele kommunen",
                          "Område must be a known area or alias (reference data), or Hele kommunen",
                          "This source reports areas and Hele kommunen only, not national levels"),
    ("area", "kommune", "bydel"): ("Område must name a bydel, an area or Hele kommunen",
                                   "Område must be a known bydel, area or alias (reference data), or Hele kommunen",
                                   "This source reports bydele, areas and Hele kommunen only, not national levels"),
    ("area", "plan"): ("", "Område must be a known area or alias (reference data), or empty for the whole plan",
                       "Område is an area of the plan or empty (the whole plan)"),
    ("area", "kommune", "national"): ("Område must name an area, Hele kommunen, Landsplan or SUB-gennemsnit",
                                      "Område must be a known area or alias (reference data), Hele kommunen, "
                                      "Landsplan or SUB-gennemsnit", ""),
}


def _scope_rules(contract: Contract) -> dict[str, list[tuple[str | None, Check]]]:
    """Rules on Område that follow from the levels the source reports: (checked derived column or
    None, check)."""
    if not contract.levels:
        return {}
    missing, unknown, level = _LEVEL_WORDS[contract.levels]
    rules: list[tuple[str | None, Check]] = []
    if missing:
        rules.append((None, Check("missing_value", missing, "expect_column_values_to_not_be_null")))
    rules.append(("omraade_key", in_reference("unknown_area", unknown, "known_scopes")))
    if level:
        rules.append(("scope_level", Check("level_not_allowed", level, "expect_column_values_to_be_in_set",
                                           {"value_set": list(contract.levels)})))
    return {"omraade": rules}


def suite_path(contract: Contract) -> Path:
    return EXPECTATIONS_DIR / f"{contract.source}.json"


def _expectation(check: Check, column: str, blamed: str) -> dict:
    kwargs = dict(check.kwargs)
    if check.expectation.startswith("expect_column_pair_values_a_to_be"):
        kwargs["column_B"] = column  # column_A holds the limit
    elif check.expectation.startswith("expect_column_pair"):
        kwargs = {"column_A": column, **kwargs}
    else:
        kwargs = {"column": column, **kwargs}
    if check.when:
        kwargs["row_condition"] = check.when.as_gx()
    meta = {"rule": check.rule, "description": check.description}
    if kwargs.get("column") != blamed:
        meta["column"] = blamed  # the delivered column a steward should look at
    return {"type": check.expectation, "kwargs": kwargs, "meta": meta}


def _required(column: Column) -> Check | None:
    if column.required is False:
        return None
    words = " (.. or empty is missing, never 0)" if column.type in ("int", "decimal") else ""
    description = column.required_description or f"{column.header} must be filled in{words}"
    when = column.required if not isinstance(column.required, bool) else None
    return Check("missing_value", description, "expect_column_values_to_not_be_null", when=when)


DUPLICATE_RULE = "duplicate_in_delivery"


def key_rule(contract: Contract) -> tuple[str, str] | None:
    """The within-delivery key rule: (column to blame, plain words). Checked in validation (not by GX,
    whose uniqueness check fails every copy): the first occurrence of a key loads, later copies are
    quarantined as `duplicate_in_delivery` with the line of the first."""
    if not contract.key:
        return None
    if contract.key == (contract.unique_across_deliveries,):
        blamed = contract.key[0]
        what = contract.column(blamed).header
    else:
        delivered = [c.header for c in contract.columns if c.name in _key_columns_delivered(contract)]
        what, blamed = f"({', '.join(delivered)})", contract.scope_column or contract.department_columns[1]
    return blamed, (f"Each {what} may occur once in a delivery: this row repeats an earlier line of the same file, "
                    "which was taken instead")


def _key_columns_delivered(contract: Contract) -> set[str]:
    """The delivered columns behind a key of staged columns (a resolved scope stands for Område)."""
    derived = {"kommune_code": "kommunekode", "scope_level": "omraade", "scope_id": "omraade",
               "organisation": "boligorganisation"}
    return {derived.get(name, name) for name in contract.key}


def _department_rules(contract: Contract) -> dict[str, list[dict]]:
    if not contract.department_columns:
        return {}
    organisation, number = contract.department_columns
    organisation_header, number_header = contract.column(organisation).header, contract.column(number).header
    return {
        organisation: [_expectation(Check(
            "unknown_organisation", f"{organisation_header} must be an organisation of the reference data (departments.csv)",
            "expect_column_values_to_not_be_null"), "organisation", organisation)],
        number: [_expectation(Check(
            "unknown_department", f"{number_header} must be a department of the organisation that belongs to an area "
            "in that År (reference data departments.csv)", "expect_column_values_to_not_be_null"), "department_area", number)],
    }


def suite_for(contract: Contract) -> dict:
    """The source's suite in GX's JSON form: per declared column its required and value rules (and the
    rules its level or department implies), then the key."""
    scope_rules = _scope_rules(contract)
    department_rules = _department_rules(contract)
    expectations = []
    for column in contract.columns:
        required = _required(column) if column.name not in scope_rules else None
        if required:
            expectations.append(_expectation(required, column.name, column.name))
        for checked, check in scope_rules.get(column.name, []):
            expectations.append(_expectation(check, checked or column.name, column.name))
        expectations += department_rules.get(column.name, [])
        for check in column.checks:
            expectations.append(_expectation(check, check.checked or column.name, column.name))
    return {
        "name": contract.source,
        "meta": {"contract": f"spec/extracts.md#{contract.source}",
                 "generated_from": f"transforms/sources/{contract.source}.py (python -m transforms.sources.suite)"},
        "expectations": expectations,
    }


def suite_text(contract: Contract) -> str:
    """The suite as JSON with one expectation a line, so a diff shows which rule changed."""
    suite = suite_for(contract)
    dumped = {key: json.dumps(value, ensure_ascii=False) for key, value in suite.items() if key != "expectations"}
    lines = ",\n    ".join(json.dumps(e, ensure_ascii=False) for e in suite["expectations"])
    head = "".join(f'  "{key}": {value},\n' for key, value in dumped.items())
    return "{\n" + head + '  "expectations": [\n    ' + lines + "\n  ]\n}\n"


def write_suites(directory: Path = EXPECTATIONS_DIR) -> list[Path]:
    written = []
    for contract in all_contracts().values():
        path = directory / f"{contract.source}.json"
        path.write_text(suite_text(contract), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_suites():
        print(written_path)
    sys.exit(0)
