import polars as pl

from transforms.sources import (
    AAR,
    KOMMUNEKODE,
    OMRAADE,
    Column,
    Contract,
    When,
    at_least_zero,
    empty,
    equal_to,
    one_of,
)

LAWS = ("Straffeloven", "Våbenloven", "Lov om euforiserende stoffer")
TOTAL = "I alt"
ON_TOTAL, ON_LAW = When("lovomraade", "==", TOTAL), When("lovomraade", "!=", TOTAL)
_AREA_YEAR = ["aar", "kommune_code", "scope_level", "scope_id"]


# Bespoke cross-row rule: the `I alt` row holds the sum of the three law rows of its (År, Område).
def _sum_of_laws(column: str) -> pl.Expr:
    return pl.col(column).filter(pl.col("lovomraade") != TOTAL).sum().over(_AREA_YEAR)


def _i_alt_sum(header: str, column: str):
    return equal_to(f"{column}_sum_of_laws", "i_alt_sum",
                    f"The I alt row's {header} must equal the sum of the three law rows of the same År and Område", ON_TOTAL)


def _persons(name: str, header: str, description: str, only_on_total_words: str) -> Column:
    """A count of distinct persons: on the `I alt` row only (a person may be charged under several laws)."""
    return Column(name, header, "int", description, aliases=(header.replace("å", "aa"),) if "å" in header else (),
                  required=ON_TOTAL, required_description=f"{header} must be filled in on the I alt row",
                  checks=(at_least_zero(header), empty("only_on_i_alt", f"{header} belongs on the I alt row only"
                                                       f"{only_on_total_words}", ON_LAW)))


CONTRACT = Contract(
    source="politi_sigtelser",
    description="Charges and criminal decisions per area and law, yearly (police).",
    columns=(
        AAR,
        KOMMUNEKODE,
        OMRAADE,
        Column("lovomraade", "Lovområde", "text", "Straffeloven, Våbenloven, Lov om euforiserende stoffer or I alt.",
               aliases=("Lovomraade",),
               checks=(one_of("Lovområde", (*LAWS, TOTAL), "Lovområde must be " + ", ".join(LAWS) + f" or {TOTAL}"),)),
        Column("afgoerelser", "Afgørelser", "int", "Criminal decisions (all but acquittals).", aliases=("Afgoerelser",),
               checks=(at_least_zero("Afgørelser"), _i_alt_sum("Afgørelser", "afgoerelser"))),
        Column("sigtelser", "Sigtelser", "int", "Charges.",
               checks=(at_least_zero("Sigtelser"), _i_alt_sum("Sigtelser", "sigtelser"))),
        _persons("sigtede", "Sigtede", "Distinct persons charged; only on the `I alt` row.",
                 " (a person may be charged under several laws)"),
        _persons("sigtede_15_29", "Sigtede 15-29 år", "Distinct persons aged 15-29 charged; only on the `I alt` row.", ""),
    ),
    key=("aar", "kommune_code", "scope_level", "scope_id", "lovomraade"),
    partition_by=("kommunekode", "aar"),
    rule_columns={"afgoerelser_sum_of_laws": _sum_of_laws("afgoerelser"), "sigtelser_sum_of_laws": _sum_of_laws("sigtelser")},
    # additive counts per area / kommune and year from the `I alt` rows (all three laws)
    measures_sql=f"""
WITH totals AS (
    SELECT scope_level, scope_id, kommune_code, aar,
           afgoerelser::DOUBLE AS afgoerelser, sigtelser::DOUBLE AS sigtelser,
           sigtede::DOUBLE AS sigtede, sigtede_15_29::DOUBLE AS sigtede_15_29
    FROM staging.politi_sigtelser
    WHERE lovomraade = '{TOTAL}'
)
SELECT scope_level AS level, scope_id, kommune_code, aar AS year, measure, value
FROM (UNPIVOT totals ON afgoerelser, sigtelser, sigtede, sigtede_15_29 INTO NAME measure VALUE value)""",
)
