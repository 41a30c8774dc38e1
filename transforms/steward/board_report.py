"""The board's and the auditor's report: `boligdata report --plan PLAN --period PERIOD`.

What the report shows is gathered here (read from the warehouse's internal file, or the build copy a
report is written in); `board_render` turns it into HTML and PDF; the ledger (`records.record_report`)
keeps what it said in meta.reports and meta.reported_figures.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from transforms.sources import contract_for
from transforms.steward.lineage import DeliveryLineage

PERIOD_PATTERN = re.compile(r"^(\d{4})(?:-H([12]))?$")


class ReportError(Exception):
    """Bad input: a one-line reason, nothing written or recorded."""


@dataclass(frozen=True)
class Period:
    text: str
    year: int
    half: int | None  # None for a whole year

    @property
    def label(self) -> str:
        return str(self.year) if self.half is None else f"{self.half}. halvår {self.year}"


def parse_period(text: str) -> Period:
    match = PERIOD_PATTERN.match(text or "")
    if not match:
        raise ReportError(f"period {text!r} is neither a year (2019) nor a half-year (2019-H1)")
    return Period(text, int(match.group(1)), int(match.group(2)) if match.group(2) else None)


# Danish names the board reads; ids stay as they are beside them.
INDICATOR_DA = {
    "tryghed_andel": "Andel trygge beboere",
    "utryghed_andel": "Andel utrygge beboere",
    "anmeldelser_pr_1000": "Anmeldelser pr. 1.000 beboere",
    "anmeldelser_pr_1000_haervaerk": "Anmeldelser af hærværk pr. 1.000 beboere",
    "anmeldelser_pr_1000_indbrud": "Anmeldelser af indbrud pr. 1.000 beboere",
    "anmeldelser_pr_1000_vold": "Anmeldelser af vold pr. 1.000 beboere",
    "anmeldelser_pr_1000_tyveri": "Anmeldelser af tyveri pr. 1.000 beboere",
    "anmeldelser_pr_1000_narkotika": "Anmeldelser af narkotika pr. 1.000 beboere",
    "anmeldelser_pr_1000_brandstiftelse": "Anmeldelser af brandstiftelse pr. 1.000 beboere",
    "anmeldelser_pr_1000_andet": "Andre anmeldelser pr. 1.000 beboere",
    "haervaerk_anmeldelser": "Anmeldelser af hærværk (antal)",
    "afgoerelser_pr_1000": "Kriminalretlige afgørelser pr. 1.000 beboere",
    "sigtelser_pr_1000": "Sigtelser pr. 1.000 beboere",
    "sigtede_pr_1000": "Sigtede personer pr. 1.000 beboere",
    "sigtede_15_29_andel": "Andel sigtede 15-29-årige",
    "fraflytningsprocent": "Fraflytningsprocent",
    "udsaettelser": "Udsættelser (antal)",
    "tomgang_pct": "Tomgang (andel af lejemålsdage)",
    "haervaerkssager": "Hærværkssager (antal)",
    "haervaerk_udgift_pr_lejemaal": "Hærværksudgift pr. lejemål",
    "paasatte_brande": "Påsatte brande (antal)",
    "dagtilbud_1_5_andel": "Andel 1-5-årige i dagtilbud",
    "karakter_9kl_gns": "Karaktergennemsnit 9. klasse (dansk og matematik)",
    "uddannelsesparat_9kl_andel": "Andel uddannelsesparate i 9. klasse",
    "kun_grundskole_18_29_andel": "Andel 18-29-årige med kun grundskole",
    "neet_15_29_andel": "Andel 15-29-årige uden uddannelse og job",
    "uden_tilknytning_18_64_andel": "Andel 18-64-årige uden for arbejde og uddannelse",
    "beskaeftigede_18_64_andel": "Andel 18-64-årige i beskæftigelse",
    "kontanthjaelp_18_64_andel": "Andel 18-64-årige på kontanthjælp",
    "frivillige_18plus_andel": "Andel 18+ der laver frivilligt arbejde",
    "valgdeltagelse_andel": "Valgdeltagelse",
    "frivillige": "Aktive frivillige",
    "hjemmeside_besoeg": "Unikke besøgende på hjemmesiden",
    "positive_historier": "Positive historier i lokale medier",
    "negative_historier": "Negative historier i lokale medier",
    "beboere_gode_historie": "Beboere involveret i den gode historie",
    "foraeldregrupper": "Forældregrupper",
    "aktive_foraeldre": "Aktive forældre i forældregrupperne",
    "temaaftener_brand": "Temaaftener om brandsikkerhed",
    "arbejdsgrupper": "Ad hoc-arbejdsgrupper",
    "deltagere_stoerre_aktiviteter": "Deltagere i større aktiviteter",
    "henvisninger_raadgivning": "Henvisninger til rådgivning",
}

UNIT_DA = {"pct": "%", "per_1000": "pr. 1.000", "count": "antal", "grade": "karakter", "kr": "kr."}

# Indicators no target uses are grouped by the catalog's family (the source that feeds them).
FAMILY_DA = {
    "politi_tryghed": "Tryghed (politiets tryghedsmåling)",
    "kommune_tryghed": "Tryghed (kommunens tryghedsundersøgelse)",
    "politi_anmeldelser": "Anmeldelser til politiet",
    "politi_sigtelser": "Afgørelser og sigtelser",
    "boligorg_afdelinger": "Boligafdelingerne",
    "brand_haendelser": "Brande",
    "kommune_noegletal": "Uddannelse, beskæftigelse og deltagelse (kommunens nøgletal)",
    "indsats_registreringer": "Indsatsens egne registreringer",
}

# The agreements' focus areas (seeds/003 §5.1-5.4, 001 §5, the delaftaler 000 and 004).
SECTION_DA = {
    ("003", "5.1"): "Tryghed og trivsel",
    ("003", "5.2"): "Kriminalpræventiv indsats",
    ("003", "5.3"): "Uddannelse og beskæftigelse",
    ("003", "5.4"): "Forebyggelse og forældreansvar",
    ("001", "5"): "LBF's faste indikatorer",
}
DOCUMENT_DA = {
    "000": "Delaftale Tryghed og trivsel",
    "001": "Strategisk samarbejdsaftale En Fælles Indsats",
    "002": "Strategisk samarbejdsaftale 2017-21",
    "003": "Strategisk samarbejdsaftale 2017-21",
    "004": "Delaftale Tryghed og trivsel",
}


def focus_area(source: str) -> tuple[tuple, str]:
    """A target's focus area: the first section its `source` cites. Targets are grouped by the agreement's
    own structure rather than by target_id prefix or indicator family, because that is how the board
    reads the agreement: 003 §5.1-5.4 are the strategic agreement's focus areas; a delaftale cited with a
    parenthesis (000 (strategisk kommunikation)) is grouped by that part of it; 001 §5 is LBF's fixed
    indicators. Returns a sort key and the Danish title."""
    source = (source or "").strip()
    section = re.match(r"(\d{3})\s*§\s*(\d+(?:\.\d+)?)", source)
    if section:
        doc, number = section.groups()
        title = SECTION_DA.get((doc, number), f"{DOCUMENT_DA.get(doc, doc)} §{number}")
        return (0, doc, [int(p) for p in number.split(".")]), f"{title} ({doc} §{number})"
    part = re.match(r"(\d{3})\s*\(([^)]*)\)", source)
    if part:
        doc, words = part.groups()
        words = words.strip()
        if doc == "002" and words.lower().startswith("delaftale tryghed og trivsel, "):  # 002 carries 000 appended
            doc, words = "000", words.split(", ", 1)[1]
        return (1, doc, words), f"{DOCUMENT_DA.get(doc, doc)}: {words[:1].upper() + words[1:]} ({doc})"
    doc = source[:3] if source[:3].isdigit() else source
    return (2, doc, ""), f"{DOCUMENT_DA.get(doc, doc)} ({doc})" if doc else "Uden kilde"


RULE_DA = {
    "below": "under {t}",
    "at_most": "højst {t}",
    "above": "over {t}",
    "at_least": "mindst {t}",
    "above_reference": "over referenceniveauet ({reading})",
    "at_most_baseline": "højst niveauet i {b}",
    "rising_vs_baseline": "stigende i forhold til {b}",
    "falling_vs_baseline": "faldende i forhold til {b}",
    "compounded_change": "ændring på {p} om året fra {b}",
    "yearly_change": "ændring på {p} i forhold til året før",
    "development_vs_kommune": "udvikling siden {b} bedre end kommunens",
}


SCOPE_DA = {"sub": "SUB-gennemsnittet (særligt udsatte boligområder)", "landsplan": "landsplan"}


def reading_da(reading: str | None) -> str:
    """marts.target_status.reading for an above_reference target, in Danish."""
    if not reading:
        return ""
    each = re.fullmatch(r"the (\S+) level (\S+) of each evaluated year", reading)
    if each:
        return f"{SCOPE_DA.get(each.group(2), each.group(2))} i hvert vurderet år"
    fixed = re.fullmatch(r"the (\S+) level (\S+) of (\d{4})", reading)
    if fixed:
        return f"{SCOPE_DA.get(fixed.group(2), fixed.group(2))} i {fixed.group(3)}"
    return reading


def rule_da(rule: str, threshold, baseline_year, reading) -> str:
    text = RULE_DA.get(rule, rule)
    percent = None if threshold is None else f"{threshold * 100:+.0f} %".replace("-", "−")
    return text.format(t=number_da(threshold), b=baseline_year or "basisåret", p=percent, reading=reading_da(reading))


def number_da(value, decimals: int | None = None) -> str:
    """1234.5 -> '1.234,5' (Danish); whole numbers without decimals."""
    if value is None:
        return "–"
    if decimals is None:
        decimals = 0 if float(value).is_integer() else 1
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


NOTE_DA = [
    (r"value suppressed by disclosure control; the verdict is judged on the unsuppressed value",
     "værdien er skjult af diskretionshensyn; vurderingen er foretaget på den ikke-offentliggjorte værdi"),
    (r"no (\S+) value for (\d{4}) \(missing, not zero\)", r"ingen værdi for \2 (mangler, ikke nul)"),
    (r"no reference value \((\S+) sub, (\d{4})\)", r"ingen værdi for SUB-gennemsnittet \2"),
    (r"no reference value \((\S+) (\S+), (\d{4})\)", r"ingen referenceværdi (\2, \3)"),
    (r"no baseline value for (\d{4})", r"ingen værdi for basisåret \1"),
    (r"no earlier year with a value to compare with", "intet tidligere år med en værdi at sammenligne med"),
    (r"compared with (\d{4}): (\d+) year\(s\) without a value skipped", r"sammenlignet med \1: \2 år uden værdi sprunget over"),
    (r"provisional target \(see reading\)", "foreløbigt mål, indtil bestyrelsen fastsætter det"),
    (r"a value is suppressed by disclosure control", "en værdi er skjult af diskretionshensyn"),
    (r"no (plan|area) value for the baseline year (\d{4})", r"ingen værdi for basisåret \2"),
    (r"no value this year", "ingen værdi i året"),
    (r"no kommune value for the baseline year (\d{4})", r"ingen kommuneværdi for basisåret \1"),
    (r"no kommune value this year", "ingen kommuneværdi i året"),
]


def note_da(note: str | None) -> str:
    if not note:
        return ""
    note = note.replace("value suppressed by disclosure control; the verdict is judged on the unsuppressed value",
                        "værdien er skjult af diskretionshensyn, vurderingen er foretaget på den ikke-offentliggjorte værdi")
    parts = []
    for part in note.split("; "):
        for pattern, replacement in NOTE_DA:
            if re.fullmatch(pattern, part):
                part = re.sub(pattern, replacement, part)
                break
        parts.append(part)
    return "; ".join(parts)


def verdict_da(met, note: str | None) -> str:
    if met is True:
        return "opfyldt"
    if met is False:
        return "ikke opfyldt"
    return "kan ikke vurderes" + (f": {note_da(note)}" if note else "")


@dataclass
class ReportData:
    plan: dict
    areas: list[tuple[str, str]]
    period: Period
    verdict_year: int
    data_updated: dt.datetime | None
    indicators: dict[str, dict]  # indicator -> catalog row (+ label_da)
    series: pl.DataFrame  # indicator, level, scope_id, year, value, suppressed
    targets: list[dict]  # one per (target_id, scope_id): the verdict of verdict_year
    target_history: pl.DataFrame  # marts.target_status rows of the plan, years <= verdict_year
    groups: list[dict]  # focus areas: title, targets, indicators
    development: pl.DataFrame
    without_data: list[dict]
    half_years: list[dict] = field(default_factory=list)  # source, measure, scope, half, value, delivery_ids
    figures: pl.DataFrame | None = None  # rows of meta.reported_figures (without report_id)
    deliveries: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    previous_report: dict | None = None
    revisions: list[dict] = field(default_factory=list)  # figures whose value changed since the previous report
    changed_verdicts: list[dict] = field(default_factory=list)  # targets met then and not now, or the reverse
    scope_names: dict[str, str] = field(default_factory=dict)


def _rows(conn, sql: str, params=None) -> list[dict]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _frame(conn, sql: str, params=None) -> pl.DataFrame:
    return conn.sql(sql, params=params).pl()


def check_request(conn: duckdb.DuckDBPyConnection, plan_id: str, period_text: str) -> Period:
    """Unknown plan, a malformed period, a period with no data: ReportError with one line."""
    plans = [p for (p,) in conn.execute("SELECT plan_id FROM ref.plans ORDER BY 1").fetchall()]
    if plan_id not in plans:
        raise ReportError(f"no plan {plan_id!r}; plans: {', '.join(plans)}")
    period = parse_period(period_text)
    scopes = _plan_scopes(conn, plan_id)
    (yearly,) = conn.execute("""SELECT count(*) FROM marts.indicator_values WHERE year = ? AND level IN ('plan', 'area')
        AND list_contains(?, scope_id)""", [period.year, scopes]).fetchall()[0]
    if period.half is None and not yearly:
        raise ReportError(f"no data for plan {plan_id} in {period.text} (marts.indicator_values has no figure of the "
                          "plan or its areas that year)")
    if period.half is not None and not _half_year_rows(conn, plan_id, period):
        raise ReportError(f"no data for plan {plan_id} in {period.text} (no police report, fire or own record of the "
                          "plan's areas in that half-year)")
    return period


def _plan_scopes(conn, plan_id: str) -> list[str]:
    return [plan_id] + [a for (a,) in conn.execute("SELECT area_id FROM ref.plan_areas WHERE plan_id = ? ORDER BY 1",
                                                   [plan_id]).fetchall()]


EVENT_SOURCES = ("politi_anmeldelser", "brand_haendelser")


def _half_year_rows(conn, plan_id: str, period: Period, halves: list[tuple[int, int]] | None = None) -> list[dict]:
    """Event counts (police reports, fires) per area and type, and the plan's own records, by half-year.
    Quarters count towards their half-year once both are there; a whole-year record is not split."""
    halves = halves or [(period.year, period.half)]
    areas = _plan_scopes(conn, plan_id)[1:]
    wanted = [f"{y}-H{h}" for y, h in halves]
    tables = {t for (t,) in conn.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                                         "WHERE schema_name = 'staging'").fetchall()}
    found: list[dict] = []
    for source in EVENT_SOURCES:
        contract = contract_for(source)
        if contract.staging_table not in tables:
            continue
        date, kind = contract.events.date, contract.events.type
        found += _rows(conn, f"""
            SELECT '{source}' AS source, coalesce(t.measure, '{source}:' || e.{kind}) AS measure, e.{kind} AS event_type,
                   'area' AS level, e.scope_id, format('{{}}-H{{}}', year(e.{date}), CASE WHEN month(e.{date}) <= 6 THEN 1 ELSE 2 END) AS period,
                   count(*)::DOUBLE AS value, list(DISTINCT e.delivery_id ORDER BY e.delivery_id) AS delivery_ids
            FROM {contract.staging_table} AS e
            LEFT JOIN core.event_types AS t ON t.source = '{source}' AND t.event_type = e.{kind}
            WHERE e.scope_level = 'area' AND list_contains($areas, e.scope_id)
              AND list_contains($wanted, format('{{}}-H{{}}', year(e.{date}), CASE WHEN month(e.{date}) <= 6 THEN 1 ELSE 2 END))
            GROUP BY ALL ORDER BY ALL""", {"areas": areas, "wanted": wanted})
    if "staging.indsats_registreringer" in tables:
        found += _rows(conn, """
            WITH records AS (
                SELECT maaling AS measure, scope_level AS level, scope_id, delivery_id, vaerdi,
                       left(periode, 4) || '-H' || CASE WHEN periode LIKE '%-H_' THEN right(periode, 1)
                                                     WHEN right(periode, 1) IN ('1', '2') THEN '1' ELSE '2' END AS period,
                       CASE WHEN periode LIKE '%-H_' THEN 'half' ELSE 'quarter' END AS kind
                FROM staging.indsats_registreringer
                WHERE plan_id = $plan AND length(periode) > 4
            )
            SELECT 'indsats_registreringer' AS source, measure, NULL AS event_type, level, scope_id, period,
                   coalesce(sum(vaerdi) FILTER (WHERE kind = 'half'),
                            CASE WHEN count(*) FILTER (WHERE kind = 'quarter') = 2 THEN sum(vaerdi) FILTER (WHERE kind = 'quarter') END)
                       AS value,
                   list(DISTINCT delivery_id ORDER BY delivery_id) AS delivery_ids
            FROM records WHERE list_contains($wanted, period)
            GROUP BY ALL HAVING value IS NOT NULL ORDER BY ALL""", {"plan": plan_id, "wanted": wanted})
    return found


def gather(conn: duckdb.DuckDBPyConnection, plan_id: str, period_text: str) -> ReportData:
    period = check_request(conn, plan_id, period_text)
    plan = _rows(conn, """SELECT p.*, k.name AS kommune_name, coalesce(p.baseline_year, year(p.start_date) - 1) AS base_year
        FROM ref.plans AS p LEFT JOIN ref.kommuner AS k USING (kommune_code) WHERE plan_id = ?""", [plan_id])[0]
    areas = [tuple(r) for r in conn.execute("""SELECT a.area_id, a.name FROM ref.plan_areas AS pa JOIN ref.areas AS a
        USING (area_id) WHERE pa.plan_id = ? ORDER BY a.area_id""", [plan_id]).fetchall()]
    scopes = [plan_id] + [a for a, _ in areas]
    # verdicts: the period's year; a half-year is judged on the latest whole year with data
    verdict_year = period.year
    if period.half is not None:
        last = conn.execute("""SELECT max(year) FROM marts.indicator_values WHERE level IN ('plan', 'area')
            AND list_contains(?, scope_id) AND year <= ?""", [scopes, period.year - (1 if period.half == 1 else 0)]).fetchall()[0][0]
        verdict_year = last or period.year - 1
    (data_updated,) = conn.execute("""SELECT coalesce((SELECT max(finished_at) FROM meta.runs WHERE new_deliveries > 0),
        (SELECT max(received_at) FROM meta.deliveries))""").fetchall()[0]

    targets_ref = _rows(conn, "SELECT * FROM ref.targets WHERE plan_id = ? AND indicator IS NOT NULL ORDER BY target_id, scope_id",
                        [plan_id])
    history = _frame(conn, "SELECT * FROM marts.target_status WHERE plan_id = ? AND year <= ? ORDER BY ALL",
                     [plan_id, verdict_year])
    target_scopes = {(t["indicator"], t["level"], t["scope_id"]) for t in targets_ref}
    indicator_ids = [i for (i,) in conn.execute("""
        SELECT DISTINCT indicator FROM marts.indicator_values
        WHERE level IN ('plan', 'area') AND list_contains(?, scope_id) AND year <= ?
        UNION SELECT indicator FROM ref.targets WHERE plan_id = ? AND indicator IS NOT NULL""",
        [scopes, verdict_year if period.half is None else period.year, plan_id]).fetchall()]
    indicators = {r["indicator"]: r | {"label_da": INDICATOR_DA.get(r["indicator"], r["indicator"])} for r in _rows(
        conn, "SELECT * FROM ref.indicators WHERE list_contains(?, indicator)", [indicator_ids])}
    # each chart: the plan, its areas, the kommune (rates and shares only) and any other scope a target names (a bydel)
    extra = [(i, level, s) for i, level, s in target_scopes if s not in scopes]
    series = _frame(conn, """
        SELECT v.indicator, v.level, v.scope_id, v.year, v.value, v.suppressed
        FROM marts.indicator_values AS v JOIN ref.indicators AS i USING (indicator)
        WHERE list_contains($indicators, v.indicator) AND v.year <= $year
          AND ((v.level IN ('plan', 'area') AND list_contains($scopes, v.scope_id))
               OR (v.level = 'kommune' AND v.scope_id = $kommune AND i.unit <> 'count')
               OR list_contains($extra, [v.indicator, v.level, v.scope_id]))
        ORDER BY ALL""", {"indicators": list(indicators), "year": verdict_year, "scopes": scopes,
                          "kommune": plan["kommune_code"], "extra": [list(e) for e in extra]})

    values = {(r["indicator"], r["level"], r["scope_id"], r["year"]): r for r in series.iter_rows(named=True)}
    targets = []
    for t in targets_ref:
        rows = history.filter(pl.col("target_id") == t["target_id"], pl.col("scope_id") == t["scope_id"])
        current = rows.filter(pl.col("year") == verdict_year)
        row = (current if current.height else rows.sort("year")).to_dicts()[-1] if rows.height else None
        baseline = values.get((t["indicator"], t["level"], t["scope_id"], t["baseline_year"])) if t["baseline_year"] else None
        entry = {
            "target_id": t["target_id"], "indicator": t["indicator"], "level": t["level"], "scope_id": t["scope_id"],
            "rule": t["rule"], "rule_da": rule_da(t["rule"], t["target_value"], t["baseline_year"], row and row["reading"]),
            "source": t["source"], "data_source": t["data_source"], "description": t["description"],
            "provisional": t["provisional"], "baseline_year": t["baseline_year"],
            "baseline_value": baseline and baseline["value"], "baseline_suppressed": bool(baseline and baseline["suppressed"]),
            "first_year": t["first_year"], "last_year": t["last_year"],
        }
        if row is None:
            why = (f"målet vurderes første gang i {t['first_year']}" if t["first_year"] and t["first_year"] > verdict_year
                   else f"ingen vurdering for {verdict_year}")
            entry |= {"year": verdict_year, "target_value": None, "actual_value": None, "met": None,
                      "suppressed": False, "note": None, "verdict": f"kan ikke vurderes: {why}"}
        else:
            verdict = verdict_da(row["met"], row["note"])
            if row["year"] != verdict_year:
                verdict += f" (senest vurderet {row['year']}; målet gælder {t['first_year']}-{t['last_year']})"
            elif row["met"] is not None and row["note"]:
                verdict += f" ({note_da(row['note'])})"
            entry |= {"year": row["year"], "target_value": row["target_value"], "actual_value": row["actual_value"],
                      "met": row["met"], "suppressed": row["suppressed"], "note": row["note"], "verdict": verdict}
        targets.append(entry)

    groups: dict[str, dict] = {}
    for t in targets:
        key, title = focus_area(t["source"])
        group = groups.setdefault(title, {"key": key, "title": title, "targets": [], "indicators": []})
        group["targets"].append(t)
        if t["indicator"] not in group["indicators"]:
            group["indicators"].append(t["indicator"])
    ordered = sorted(groups.values(), key=lambda g: g["key"])
    with_targets = {i for g in ordered for i in g["indicators"]}
    others: dict[str, list[str]] = {}
    for indicator in sorted(indicators):
        if indicator not in with_targets:
            others.setdefault(indicators[indicator]["source"], []).append(indicator)
    for source, members in sorted(others.items(), key=lambda kv: FAMILY_DA.get(kv[0], kv[0])):
        ordered.append({"key": (3, source), "title": f"Øvrige indikatorer: {FAMILY_DA.get(source, source)}",
                        "targets": [], "indicators": members})

    development = _frame(conn, "SELECT * FROM marts.development_vs_kommune WHERE plan_id = ? AND year = ? ORDER BY indicator, level DESC, scope_id",
                         [plan_id, verdict_year])
    without = _rows(conn, "SELECT * FROM marts.targets_without_data WHERE plan_id = ? ORDER BY target_id, scope_id", [plan_id])
    half_years = []
    if period.half is not None:
        halves = [(period.year - 1, 1), (period.year - 1, 2)] + [(period.year, h) for h in range(1, period.half + 1)]
        half_years = _half_year_rows(conn, plan_id, period, halves)
    names = dict(areas) | {plan_id: "Hele planen", plan["kommune_code"]: f"{plan['kommune_name'] or plan['kommune_code']} Kommune"}
    names |= dict(conn.execute("SELECT bydel_id, name FROM ref.bydele").fetchall()) if _has_table(conn, "ref", "bydele") else {}
    data = ReportData(plan=plan, areas=areas, period=period, verdict_year=verdict_year, data_updated=data_updated,
                      indicators=indicators, series=series, targets=targets, target_history=history, groups=ordered,
                      development=development, without_data=without, half_years=half_years, scope_names=names)
    data.figures = _figures(conn, data)
    _data_quality(conn, data)
    return data


def _has_table(conn, schema: str, table: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                             [schema, table]).fetchall()[0][0])


FIGURE_SCHEMA = {"kind": pl.String, "indicator": pl.String, "level": pl.String, "scope_id": pl.String, "period": pl.String,
                 "year": pl.Int32, "target_id": pl.String, "value": pl.Float64, "suppressed": pl.Boolean, "met": pl.Boolean,
                 "verdict": pl.String, "delivery_ids": pl.List(pl.Int32)}


def _figures(conn, data: ReportData) -> pl.DataFrame:
    """Every figure the report shows, with the deliveries behind it: what meta.reported_figures keeps."""
    lineage = DeliveryLineage(conn)
    rows = []
    for r in data.series.iter_rows(named=True):
        rows.append({"kind": "indicator", "indicator": r["indicator"], "level": r["level"], "scope_id": r["scope_id"],
                     "period": str(r["year"]), "year": r["year"], "target_id": None, "value": r["value"],
                     "suppressed": r["suppressed"], "met": None, "verdict": None,
                     "delivery_ids": lineage.delivery_ids(r["indicator"], r["level"], r["scope_id"], r["year"])})
    for t in data.targets:
        rows.append({"kind": "target", "indicator": t["indicator"], "level": t["level"], "scope_id": t["scope_id"],
                     "period": str(t["year"]), "year": t["year"], "target_id": t["target_id"], "value": t["actual_value"],
                     "suppressed": bool(t["suppressed"]), "met": t["met"], "verdict": t["verdict"],
                     "delivery_ids": lineage.delivery_ids(t["indicator"], t["level"], t["scope_id"], t["year"])})
    for h in data.half_years:
        rows.append({"kind": "half_year", "indicator": h["measure"], "level": h["level"], "scope_id": h["scope_id"],
                     "period": h["period"], "year": int(h["period"][:4]), "target_id": None, "value": h["value"],
                     "suppressed": False, "met": None, "verdict": None, "delivery_ids": h["delivery_ids"]})
    if data.half_years:  # event rows are per type; the report's figure is the (measure, scope, half) total
        frame = pl.DataFrame(rows, schema=FIGURE_SCHEMA)
        halves = frame.filter(kind="half_year").group_by("kind", "indicator", "level", "scope_id", "period", "year").agg(
            pl.col("target_id").first(), pl.col("value").sum(), pl.col("suppressed").any(), pl.col("met").first(),
            pl.col("verdict").first(), pl.col("delivery_ids").list.explode(keep_nulls=False, empty_as_null=False).unique().sort())
        return pl.concat([frame.filter(pl.col("kind") != "half_year"), halves.select(FIGURE_SCHEMA.keys())]).cast(FIGURE_SCHEMA)
    return pl.DataFrame(rows, schema=FIGURE_SCHEMA)


def _data_quality(conn, data: ReportData) -> None:
    used = sorted({d for ids in data.figures["delivery_ids"].to_list() for d in ids})
    data.deliveries = _rows(conn, """SELECT delivery_id, source, file_name, sha256, received_at, status, rows_loaded,
        rows_quarantined FROM meta.deliveries WHERE list_contains(?, delivery_id) ORDER BY delivery_id""", [used])
    data.quarantine = _rows(conn, """SELECT d.source, count(DISTINCT (q.delivery_id, q.line_number)) AS rows,
        count(*) AS problems, string_agg(DISTINCT q.rule, ', ' ORDER BY q.rule) AS rules
        FROM meta.quarantine AS q JOIN meta.deliveries AS d USING (delivery_id)
        WHERE q.status = 'open' GROUP BY 1 ORDER BY 1""")
    if not _has_table(conn, "meta", "reports"):  # a warehouse written before reports existed
        return
    previous = _rows(conn, "SELECT * FROM meta.reports WHERE plan_id = ? ORDER BY report_id DESC LIMIT 1", [data.plan["plan_id"]])
    data.previous_report = previous[0] if previous else None
    if not previous:
        return
    old = _frame(conn, """SELECT kind, indicator, level, scope_id, period, coalesce(target_id, '') AS target_id, value,
        suppressed, delivery_ids FROM meta.reported_figures WHERE report_id = ? AND kind <> 'target'""", [previous[0]["report_id"]])
    new = data.figures.filter(pl.col("kind") != "target").with_columns(pl.col("target_id").fill_null(""))
    keys = ["kind", "indicator", "level", "scope_id", "period", "target_id"]
    joined = old.join(new, on=keys, suffix="_new")
    files = {d: f"{s}/{f}" for d, s, f in conn.execute("SELECT delivery_id, source, file_name FROM meta.deliveries").fetchall()}

    def changed_by(r: dict) -> dict:
        ids = sorted(set(r["delivery_ids_new"]) - set(r["delivery_ids"] or []))
        return {"changed_by": ids, "changed_by_files": [f"{d}: {files.get(d, '?')}" for d in ids]}

    for r in joined.iter_rows(named=True):
        same = (r["suppressed"] == r["suppressed_new"]
                and (r["value"] == r["value_new"] or (r["value"] is not None and r["value_new"] is not None
                                                      and abs(r["value"] - r["value_new"]) < 1e-9)))
        if not same:
            data.revisions.append(r | changed_by(r))
    # a verdict is compared per target and scope: met, not met or not to be judged, in whichever year each
    # report judged it (a later year with data, or the same year with corrected figures)
    judged = _frame(conn, """SELECT target_id, scope_id, period, met, verdict, delivery_ids FROM meta.reported_figures
        WHERE report_id = ? AND kind = 'target'""", [previous[0]["report_id"]])
    now = data.figures.filter(kind="target").select("target_id", "scope_id", "period", "met", "verdict", "delivery_ids")
    for r in judged.join(now, on=["target_id", "scope_id"], suffix="_new").sort("target_id", "scope_id").iter_rows(named=True):
        if r["met"] != r["met_new"]:
            data.changed_verdicts.append(r | changed_by(r))


@dataclass
class WrittenReport:
    report_id: int
    html: Path
    pdf: Path
    seconds: float
    previous_report_id: int | None  # the plan's report this one lists revisions against
    revisions: int
    changed_verdicts: int


def check_out_dir(out) -> Path:
    import os
    from pathlib import Path

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"output folder {out} cannot be created: {error.strerror}") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise ReportError(f"output folder {out} is not writable")
    return out


def write_report(warehouse, plan_id: str, period_text: str, out, created_by: str | None = None) -> WrittenReport:
    """Render the report, write its HTML and PDF into OUT and record it (meta.reports, meta.reported_figures)
    through the one write sequence: lock, build copy, record, publish. Bad input raises ReportError before
    anything is written; a failure after the files are written removes them and records nothing."""
    import getpass
    import hashlib
    import time
    from pathlib import Path

    from transforms.ledger.deliveries import LedgerSnapshot
    from transforms.ledger.records import next_report_id, record_report
    from transforms.ledger.runs import RunSummary
    from transforms.steward import board_render
    from warehouse.build import warehouse_write
    from warehouse.files import internal_file

    started = time.perf_counter()
    warehouse = Path(warehouse).resolve()
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:  # bad input: nothing copied, nothing written
        check_request(conn, plan_id, period_text)
    out = check_out_dir(out)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run = RunSummary(f"report-{now:%Y%m%dT%H%M%S%f}", "(report)", str(warehouse), now,
                     LedgerSnapshot.read(warehouse).model_fingerprint)
    written: list[Path] = []
    try:
        with warehouse_write(warehouse, run) as write:
            with duckdb.connect(str(write.build)) as conn:
                data = gather(conn, plan_id, period_text)
                report_id = next_report_id(conn)
                blocks = board_render.sections(data)
                svgs = board_render.charts(data)
                stem = f"rapport-{report_id}-{plan_id}-{period_text}"
                html_path, pdf_path = out / f"{stem}.html", out / f"{stem}.pdf"
                html_bytes = board_render.render_html(data, blocks, svgs, report_id).encode("utf-8")
                pdf_bytes = board_render.render_pdf(data, blocks, svgs, report_id)
                for path, content in ((html_path, html_bytes), (pdf_path, pdf_bytes)):
                    written.append(path)
                    path.write_bytes(content)
                record_report(conn, {
                    "report_id": report_id, "plan_id": plan_id, "period": period_text, "created_at": now,
                    "created_by": created_by or getpass.getuser(), "html_file": html_path.name,
                    "html_sha256": hashlib.sha256(html_bytes).hexdigest(), "pdf_file": pdf_path.name,
                    "pdf_sha256": hashlib.sha256(pdf_bytes).hexdigest(), "verdict_year": data.verdict_year,
                    "previous_report_id": data.previous_report and data.previous_report["report_id"],
                }, data.figures)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return WrittenReport(report_id, html_path, pdf_path, time.perf_counter() - started,
                         data.previous_report and data.previous_report["report_id"], len(data.revisions),
                         len(data.changed_verdicts))


def list_reports(warehouse) -> pl.DataFrame:
    from warehouse.files import internal_file

    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        if not _has_table(conn, "meta", "reports"):
            return pl.DataFrame()
        return conn.sql("""SELECT r.report_id, r.plan_id, r.period, r.created_at, r.created_by, r.html_file, r.pdf_file,
            left(r.pdf_sha256, 12) AS pdf_sha256, (SELECT count(*) FROM meta.reported_figures AS f WHERE f.report_id = r.report_id)
            AS figures FROM meta.reports AS r ORDER BY r.report_id""").pl()
