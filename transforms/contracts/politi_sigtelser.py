import polars as pl

from transforms.contracts import AAR, KOMMUNEKODE, OMRAADE, Column, Contract

_LAW_ROW = pl.col("lovomraade") != "I alt"
_AREA_YEAR = ["aar", "kommune_code", "scope_level", "scope_id"]


def _sum_of_laws(column: str) -> pl.Expr:
    """The sum of the three law rows of the row's (År, Område), to hold the `I alt` row against."""
    return pl.col(column).filter(_LAW_ROW).sum().over(_AREA_YEAR)


CONTRACT = Contract(
    source="politi_sigtelser",
    description="Charges and criminal decisions per area and law, yearly (police).",
    columns=(
        AAR,
        KOMMUNEKODE,
        OMRAADE,
        Column("lovomraade", "Lovområde", "text", "Straffeloven, Våbenloven, Lov om euforiserende stoffer or I alt.",
               aliases=("Lovomraade",)),
        Column("afgoerelser", "Afgørelser", "int", "Criminal decisions (all but acquittals).",
               aliases=("Afgoerelser",)),
        Column("sigtelser", "Sigtelser", "int", "Charges."),
        Column("sigtede", "Sigtede", "int", "Distinct persons charged; only on the `I alt` row."),
        Column("sigtede_15_29", "Sigtede 15-29 år", "int",
               "Distinct persons aged 15-29 charged; only on the `I alt` row.", aliases=("Sigtede 15-29 aar",)),
    ),
    partition_by=("kommunekode", "aar"),
    rule_columns={"afgoerelser_sum_of_laws": _sum_of_laws("afgoerelser"), "sigtelser_sum_of_laws": _sum_of_laws("sigtelser")},
)
