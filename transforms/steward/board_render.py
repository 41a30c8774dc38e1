"""The board report as one HTML page and one PDF, both opening offline.

Charts: matplotlib, rendered to SVG with text as paths (no fonts, scripts or links to fetch), embedded
in the HTML as data: URIs and placed in the PDF as files beside the Typst source. PDF: the `typst`
package (the Typst compiler with its own fonts; no system libraries). Measured in docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from pathlib import Path

import polars as pl

from transforms.steward.board_report import (
    FAMILY_DA,
    UNIT_DA,
    ReportData,
    note_da,
    number_da,
)

SCOPE_COLOURS = ["#1f5f99", "#d9822b", "#2e8b57", "#8e44ad", "#b03a2e", "#7f8c8d"]
SUPPRESSED_DA = "skjult (diskretion)"
# meta.deliveries' statuses in the board's words (the deliveries behind figures are loaded or superseded)
DELIVERY_STATUS_DA = {"loaded": "indlæst", "loaded_with_quarantine": "indlæst, rækker i karantæne",
                      "superseded": "erstattet af en rettelse"}


def _chart_svg(data: ReportData, indicator: str) -> str:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    matplotlib.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "boligdata", "font.size": 8})
    info = data.indicators[indicator]
    rows = data.series.filter(pl.col("indicator") == indicator)
    fig, ax = plt.subplots(figsize=(7.2, 2.9))
    order = ([(s, "plan") for s in rows.filter(level="plan")["scope_id"].unique().sort()]
             + [(s, "area") for s in rows.filter(level="area")["scope_id"].unique().sort()]
             + [(s, lvl) for s, lvl in rows.filter(~pl.col("level").is_in(["plan", "area"])).select("scope_id", "level")
                .unique().sort("scope_id").iter_rows()])
    colours = {}
    years = sorted(set(rows["year"].to_list())) or [data.verdict_year]
    for index, (scope, level) in enumerate(order):
        scope_rows = rows.filter(scope_id=scope).sort("year")
        colour = "#222222" if level == "kommune" else SCOPE_COLOURS[index % len(SCOPE_COLOURS)]
        colours[scope] = colour
        name = data.scope_names.get(scope, scope)
        style = {"plan": dict(lw=2.6, marker="o", ms=4), "kommune": dict(lw=1.6, ls="--", marker="s", ms=3)}.get(
            level, dict(lw=1.2, marker="o", ms=3))
        shown = scope_rows.filter(~pl.col("suppressed"))
        ax.plot(shown["year"].to_list(), shown["value"].to_list(), color=colour, label=name, **style)
        hidden = scope_rows.filter(pl.col("suppressed"))["year"].to_list()
        if hidden:  # never drawn as a value: a cross on the axis, named in the legend
            ax.plot(hidden, [0.02] * len(hidden), transform=ax.get_xaxis_transform(), ls="none", marker="x", ms=7, mew=1.8,
                    color=colour, label=f"{name}: {SUPPRESSED_DA}", clip_on=False)
    for (scope,), target_rows in data.target_history.filter(
            pl.col("indicator") == indicator, pl.col("rule") != "development_vs_kommune",
            pl.col("target_value").is_not_null()).sort("year").group_by("scope_id", maintain_order=True):
        colour = colours.get(scope, "#c0392b")
        ax.plot(target_rows["year"].to_list(), target_rows["target_value"].to_list(), ls=":", lw=1.6, marker="_", ms=14,
                mew=2, color=colour, label=f"Mål: {data.scope_names.get(scope, scope)}")
        years += target_rows["year"].to_list()
    ax.set_xticks(sorted(set(years)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v)}"))
    ax.yaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number_da(v)))
    ax.set_ylabel(UNIT_DA.get(info["unit"], info["unit"]))
    ax.grid(axis="y", color="#dddddd", lw=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    low, high = ax.get_ylim()
    if low > 0 and info["unit"] == "count":
        ax.set_ylim(0, high)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    # fixed margins, room for the legend on the right: tight_layout would draw every chart twice
    fig.subplots_adjust(left=0.08, right=0.64, top=0.95, bottom=0.1)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def charts(data: ReportData) -> dict[str, str]:
    return {i: _chart_svg(data, i) for g in data.groups for i in g["indicators"] if i in data.indicators}


def _value(value, unit: str | None, suppressed: bool = False) -> str:
    if suppressed:
        return SUPPRESSED_DA
    if value is None:
        return "–"
    suffix = {"pct": " %", "kr": " kr."}.get(unit or "", "")
    return number_da(value, None if unit == "count" else 1) + suffix


def _name(data: ReportData, scope: str) -> str:
    return data.scope_names.get(scope, scope)


def sections(data: ReportData) -> list[dict]:
    """The report as a list of blocks both renderers lay out: headings, paragraphs, tables, charts."""
    plan = data.plan
    blocks: list[dict] = []
    add = blocks.append
    met = sum(1 for t in data.targets if t["met"] is True)
    not_met = sum(1 for t in data.targets if t["met"] is False)
    unknown = len(data.targets) - met - not_met
    add({"h1": f"Bestyrelsesrapport: {plan['name']}"})
    add({"p": f"Plan: {plan['plan_id']} ({plan['start_date']:%d.%m.%Y}–{plan['end_date']:%d.%m.%Y}), "
              f"{plan['kommune_name'] or plan['kommune_code']} Kommune. Basisår: {plan['base_year']}."})
    add({"p": "Områder: " + "; ".join(f"{name} ({area})" for area, name in data.areas) + "."})
    period_text = f"Periode: {data.period.label} ({data.period.text})."
    if data.period.half is not None:
        period_text += f" Målene vurderes på seneste hele år med data: {data.verdict_year}."
    add({"p": period_text})
    updated = f"{data.data_updated:%d.%m.%Y %H:%M} UTC" if data.data_updated else "ukendt"
    add({"p": f"Data senest opdateret: {updated}."})
    add({"h2": f"Målene {data.verdict_year} i overblik"})
    add({"p": f"{met} opfyldt, {not_met} ikke opfyldt, {unknown} kan ikke vurderes "
              f"(af {len(data.targets)} mål pr. område/plan). Mål uden data endnu: {len(data.without_data)}."})
    add({"table": {"head": ["Mål", "Område/plan", "Vurdering"],
                   # the indicator in the board's words first; the target's id ties it to the section below
                   "rows": [[f"{data.indicators.get(t['indicator'], {}).get('label_da', t['indicator'])}\n{t['target_id']}",
                             _name(data, t["scope_id"]), t["verdict"]] for t in data.targets],
                   "verdicts": [t["met"] for t in data.targets], "widths": [3, 2, 5]}})
    add({"pagebreak": True})
    for group in data.groups:
        add({"h2": group["title"]})
        if group["targets"]:
            rows = []
            for t in group["targets"]:
                unit = data.indicators.get(t["indicator"], {}).get("unit")
                baseline = (f"{t['baseline_year']}: {_value(t['baseline_value'], unit, t['baseline_suppressed'])}"
                            if t["baseline_year"] else "–")
                target = t["rule_da"] + (f" ({_value(t['target_value'], unit)})" if t["target_value"] is not None
                                         and t["rule"] not in ("below", "at_most", "above", "at_least") else "")
                rows.append([f"{t['target_id']}\n{t['description']}", f"{t['source']}\n{t['data_source'] or ''}".strip(),
                             _name(data, t["scope_id"]), baseline, target,
                             f"{t['year']}: {_value(t['actual_value'], unit, t['suppressed'])}", t["verdict"]])
            add({"table": {"head": ["Mål", "Kilde (dokument §)", "Område/plan", "Basis", "Mål for året", "Faktisk", "Vurdering"],
                           "rows": rows, "verdicts": [t["met"] for t in group["targets"]], "widths": [4, 2, 2, 1.4, 2, 1.4, 2.4],
                           "small": True}})
        for indicator in group["indicators"]:
            info = data.indicators.get(indicator)
            if not info:
                continue
            add({"h3": f"{info['label_da']} ({indicator})"})
            caption = f"{UNIT_DA.get(info['unit'], info['unit'])}; {'lavere' if info['direction'] == 'lower' else 'højere'} er bedre."
            if info["unit"] == "count":
                caption += " Et antal sammenlignes ikke med hele kommunens antal; kommunen vises derfor ikke."
            if data.target_history.filter(pl.col("indicator") == indicator, rule="development_vs_kommune").height:
                caption += " Målet er udviklingen i forhold til kommunen: se afsnittet om udvikling."
            if data.series.filter(pl.col("indicator") == indicator, pl.col("suppressed")).height:
                caption += " × på aksen: værdien er skjult af diskretionshensyn (ikke nul)."
            if not data.series.filter(pl.col("indicator") == indicator).height:
                caption += " Ingen data endnu."
            add({"chart": indicator, "caption": caption})
    add({"pagebreak": True})
    add({"h2": f"Udvikling i forhold til kommunen siden basisåret ({data.verdict_year})"})
    if data.development.height:
        rows = []
        for r in data.development.iter_rows(named=True):
            unit = data.indicators.get(r["indicator"], {}).get("unit")
            better = {True: "bedre", False: "dårligere"}.get(r["developed_better_than_kommune"], note_da(r["note"]) or "–")
            rows.append([f"{data.indicators.get(r['indicator'], {}).get('label_da', r['indicator'])} ({r['indicator']})",
                         _name(data, r["scope_id"]), f"{r['baseline_year']}: {_value(r['baseline_value'], unit)}",
                         _value(r["value"], unit), _value(r["change"], unit), _value(r["kommune_change"], unit), better])
        add({"table": {"head": ["Indikator", "Område/plan", "Basis", f"{data.verdict_year}", "Ændring", "Kommunens ændring",
                                "Udvikling vs. kommunen"], "rows": rows, "widths": [4, 2, 1.6, 1.2, 1.2, 1.4, 2.4], "small": True}})
    else:
        add({"p": "Ingen rater eller andele for planen i året."})
    add({"h2": "Aftalte mål uden data endnu"})
    add({"table": {"head": ["Mål", "Beskrivelse", "Kilde", "Datakilde ifølge aftalen"],
                   "rows": [[w["target_id"], w["description"], w["source"], w["data_source"] or "–"] for w in data.without_data],
                   "widths": [3, 5, 2, 3], "small": True}} if data.without_data else {"p": "Ingen."})
    if data.period.half is not None:
        add({"h2": f"Halvårstal: hændelser og egne registreringer ({data.period.label})"})
        halves = sorted({h["period"] for h in data.half_years})
        frame = pl.DataFrame(data.half_years) if data.half_years else None
        for source in ("politi_anmeldelser", "brand_haendelser", "indsats_registreringer"):
            if frame is None or not frame.filter(source=source).height:
                continue
            part = frame.filter(source=source)
            key = "event_type" if source != "indsats_registreringer" else "measure"
            rows = []
            for (label, scope), cells in part.group_by(key, "scope_id", maintain_order=True):
                by_half = dict(zip(cells["period"].to_list(), cells["value"].to_list()))
                shown = label if source != "indsats_registreringer" else f"{data.indicators.get(label, {}).get('label_da', label)} ({label})"
                rows.append([shown, _name(data, scope)] + [number_da(by_half[h], 0) if h in by_half else "–" for h in halves])
            rows.sort()
            add({"h3": FAMILY_DA.get(source, source) + (" (pr. hændelsestype og område)" if source != "indsats_registreringer" else "")})
            add({"table": {"head": ["Type" if source != "indsats_registreringer" else "Måling", "Område/plan"] + halves,
                           "rows": rows, "widths": [3, 2] + [1] * len(halves), "small": True}})
    add({"pagebreak": True})
    add({"h2": "Datakvalitet"})
    add({"h3": "Leverancer bag tallene"})
    add({"table": {"head": ["Levering", "Kilde/fil", "SHA-256 (start)", "Modtaget", "Status", "Rækker"],
                   "rows": [[str(d["delivery_id"]), f"{d['source']}/{d['file_name']}", d["sha256"][:12],
                             f"{d['received_at']:%d.%m.%Y}", DELIVERY_STATUS_DA.get(d["status"], d["status"]), str(d["rows_loaded"])] for d in data.deliveries],
                   "widths": [1, 5, 2, 1.6, 2, 1], "small": True}})
    add({"h3": "Åbne rækker i karantæne pr. kilde"})
    add({"table": {"head": ["Kilde", "Rækker", "Regler"],
                   "rows": [[q["source"], str(q["rows"]), q["rules"]] for q in data.quarantine], "widths": [3, 1, 4]}}
        if data.quarantine else {"p": "Ingen åbne rækker i karantæne."})
    add({"h3": "Tal rettet siden sidste rapport"})
    if data.previous_report is None:
        add({"p": "Dette er planens første rapport; der er intet at sammenligne med."})
    else:
        prev = data.previous_report
        add({"p": f"Sammenlignet med rapport {prev['report_id']} ({prev['period']}, {prev['created_at']:%d.%m.%Y %H:%M}): "
                  f"{len(data.revisions)} tal rettet."})
        if data.revisions:
            rows = []
            for r in data.revisions:
                unit = data.indicators.get(r["indicator"], {}).get("unit")
                rows.append([r["indicator"], _name(data, r["scope_id"]), r["period"],
                             _value(r["value"], unit, r["suppressed"]), _value(r["value_new"], unit, r["suppressed_new"]),
                             "; ".join(r["changed_by_files"]) or "ingen ny levering (referencedata eller beregning ændret)"])
            add({"table": {"head": ["Indikator", "Område/plan", "Periode", "Før", "Nu", "Ændret af levering"], "rows": rows,
                           "widths": [3, 2, 1, 1.2, 1.2, 4], "small": True}})
        add({"h3": "Vurderinger ændret siden sidste rapport"})
        if data.changed_verdicts:
            rows = []
            for r in data.changed_verdicts:
                why = ("; ".join(r["changed_by_files"]) if r["changed_by_files"]
                       else "ingen ny levering (referencedata eller beregning ændret)")
                if r["period"] != r["period_new"]:
                    why = f"vurderet på et nyere år ({r['period_new']}); " + why
                rows.append([r["target_id"], _name(data, r["scope_id"]), f"{r['period']}: {r['verdict']}",
                             f"{r['period_new']}: {r['verdict_new']}", why])
            add({"table": {"head": ["Mål", "Område/plan", "Før", "Nu", "Hvorfor"], "rows": rows,
                           "widths": [3, 2, 3, 3, 4], "small": True}})
        else:
            add({"p": "Ingen: hvert mål har samme vurdering som i sidste rapport."})
    return blocks


# ---------------------------------------------------------------- HTML

CSS = """
body { font-family: "Segoe UI", Arial, Helvetica, sans-serif; color: #1b1b1b; max-width: 1100px; margin: 2em auto; padding: 0 1em; font-size: 14px; }
h1 { font-size: 26px; border-bottom: 3px solid #1f5f99; padding-bottom: .3em; }
h2 { font-size: 20px; margin-top: 1.8em; color: #1f5f99; border-bottom: 1px solid #c8d6e5; }
h3 { font-size: 15px; margin-bottom: .3em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0 1em; table-layout: fixed; }
th, td { border: 1px solid #d0d7de; padding: 4px 6px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #eef3f8; }
table.small { font-size: 12px; }
td.met { background: #e3f4e1; } td.notmet { background: #fbe3e1; } td.unknown { background: #f3f3f3; color: #555; }
figure { margin: 0 0 1.2em; } figure img { width: 100%; max-width: 900px; height: auto; }
figcaption { font-size: 12px; color: #555; }
.muted { color: #666; font-size: 12px; }
"""


def _td(text: str) -> str:
    return "<br>".join(html.escape(part) for part in str(text).split("\n"))


def render_html(data: ReportData, blocks: list[dict], svgs: dict[str, str], report_id: int) -> str:
    out = ["<!DOCTYPE html>", '<html lang="da"><head><meta charset="utf-8">',
           f"<title>{html.escape(data.plan['name'])}: {html.escape(data.period.label)}</title>",
           f"<style>{CSS}</style></head><body>",
           f'<p class="muted">Rapport {report_id} · boligdata · {html.escape(data.plan["plan_id"])} · {html.escape(data.period.text)}</p>']
    for block in blocks:
        if "h1" in block:
            out.append(f"<h1>{html.escape(block['h1'])}</h1>")
        elif "h2" in block:
            out.append(f"<h2>{html.escape(block['h2'])}</h2>")
        elif "h3" in block:
            out.append(f"<h3>{html.escape(block['h3'])}</h3>")
        elif "p" in block:
            out.append(f"<p>{html.escape(block['p'])}</p>")
        elif "table" in block:
            table = block["table"]
            total = sum(table["widths"])
            cols = "".join(f'<col style="width:{100 * w / total:.1f}%">' for w in table["widths"])
            out.append(f'<table class="{"small" if table.get("small") else ""}"><colgroup>{cols}</colgroup><thead><tr>'
                       + "".join(f"<th>{html.escape(h)}</th>" for h in table["head"]) + "</tr></thead><tbody>")
            verdicts = table.get("verdicts")
            for index, row in enumerate(table["rows"]):
                cells = [f"<td>{_td(c)}</td>" for c in row]
                if verdicts is not None:
                    css = {True: "met", False: "notmet"}.get(verdicts[index], "unknown")
                    cells[-1] = f'<td class="{css}">{_td(row[-1])}</td>'
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif "chart" in block:
            encoded = base64.b64encode(svgs[block["chart"]].encode()).decode()
            out.append(f'<figure><img alt="{html.escape(block["chart"])}" src="data:image/svg+xml;base64,{encoded}">'
                       f"<figcaption>{html.escape(block['caption'])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


# ---------------------------------------------------------------- PDF (Typst)

def _ts(text) -> str:
    """A Typst string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tcell(text) -> str:
    parts = str(text).split("\n")
    return "[" + " \\ ".join(f"#{_ts(p)}" for p in parts) + "]"


VERDICT_FILL = {True: 'rgb("#e3f4e1")', False: 'rgb("#fbe3e1")', None: 'rgb("#f3f3f3")'}


def render_typst(data: ReportData, blocks: list[dict], report_id: int) -> str:
    header = f"Rapport {report_id} · {data.plan['plan_id']} · {data.period.text}"
    out = [
        '#set document(title: ' + _ts(f"{data.plan['name']}: {data.period.label}") + ')',
        '#set page(paper: "a4", margin: (x: 1.6cm, y: 1.8cm), header: align(right, text(size: 8pt, fill: luma(110), '
        + _ts(header) + ')), footer: context align(center, text(size: 8pt)[Side #counter(page).display() af '
        '#counter(page).final().first()]))',
        '#set text(lang: "da", size: 9.5pt)',
        '#set par(justify: false)',
        '#show heading.where(level: 1): set text(size: 18pt, fill: rgb("#1f5f99"))',
        '#show heading.where(level: 2): set text(size: 13pt, fill: rgb("#1f5f99"))',
        '#show heading.where(level: 3): set text(size: 10.5pt)',
    ]
    for block in blocks:
        if "h1" in block:
            out.append(f"#heading(level: 1, {_ts(block['h1'])})")
        elif "h2" in block:
            out.append(f"#heading(level: 2, {_ts(block['h2'])})")
        elif "h3" in block:
            out.append(f"#block(breakable: false)[#heading(level: 3, {_ts(block['h3'])})]")
        elif "p" in block:
            out.append(f"#par({_ts(block['p'])})")
        elif "pagebreak" in block:
            out.append("#pagebreak(weak: true)")
        elif "table" in block:
            table = block["table"]
            size = "7.5pt" if table.get("small") else "8.5pt"
            verdicts = table.get("verdicts")
            cells = []
            for index, row in enumerate(table["rows"]):
                for column, cell in enumerate(row):
                    if verdicts is not None and column == len(row) - 1:
                        cells.append(f"table.cell(fill: {VERDICT_FILL[verdicts[index]]}, {_tcell(cell)})")
                    else:
                        cells.append(_tcell(cell))
            widths = ", ".join(f"{w}fr" for w in table["widths"])
            head = ", ".join(f"[*#{_ts(h)}*]" for h in table["head"])
            out.append(f"#text(size: {size})[#table(columns: ({widths}), inset: 3pt, stroke: 0.4pt + luma(190), "
                       f"fill: (x, y) => if y == 0 {{ rgb(\"#eef3f8\") }}, table.header({head}), {', '.join(cells)})]")
        elif "chart" in block:
            out.append(f'#block(breakable: false)[#image("chart-{block["chart"]}.svg", width: 100%) '
                       f'#text(size: 7.5pt, fill: luma(90), {_ts(block["caption"])})]')
    return "\n".join(out) + "\n"


def render_pdf(data: ReportData, blocks: list[dict], svgs: dict[str, str], report_id: int) -> bytes:
    import typst

    with tempfile.TemporaryDirectory(prefix="boligdata-report-") as folder:
        root = Path(folder)
        for indicator, svg in svgs.items():
            (root / f"chart-{indicator}.svg").write_text(svg, encoding="utf-8")
        (root / "report.typ").write_text(render_typst(data, blocks, report_id), encoding="utf-8")
        # the compiler's own fonts only: the same PDF on every machine, nothing looked up
        return typst.compile(str(root / "report.typ"), root=str(root), ignore_system_fonts=True)
