import polars as pl

from transforms.contracts import AAR, Column, Contract

_DAYS_IN_YEAR = pl.date(pl.col("aar") + 1, 1, 1) - pl.date(pl.col("aar"), 1, 1)

CONTRACT = Contract(
    source="boligorg_afdelinger",
    description="Yearly figures per housing department (housing organisation).",
    columns=(
        Column("boligorganisation", "Boligorganisation", "text", "The housing organisation, as named in the reference data.",
               aliases=("Organisation", "Boligselskab")),
        Column("afdeling", "Afdeling", "int", "Department number (leading zeros allowed).", aliases=("Afdelingsnummer", "Afd.")),
        AAR,
        Column("lejemaal", "Lejemål", "int", "Number of tenancies.", aliases=("Lejemaal", "Boliger")),
        Column("fraflytninger", "Fraflytninger", "int", "Move-outs during the year."),
        Column("udsaettelser", "Udsættelser", "int", "Evictions during the year.", aliases=("Udsaettelser",)),
        Column("tomgangsdage", "Tomgangsdage", "int", "Vacancy days summed over tenancies."),
        Column("haervaerkssager", "Hærværkssager", "int", "Vandalism cases needing repair.", aliases=("Haervaerkssager",)),
        Column("haervaerksudgift", "Hærværksudgift (kr.)", "decimal", "Vandalism repair cost in kr.",
               aliases=("Hærværksudgift", "Haervaerksudgift (kr.)", "Haervaerksudgift")),
        Column("ventelistetal", "Ventelistetal", "int", "People on the waiting list; may be empty."),
    ),
    scope_column=None,
    department_columns=("boligorganisation", "afdeling"),
    partition_by=("organisation", "aar"),
    formats=("csv", "xlsx"),
    rule_columns={"tomgangsdage_max": pl.col("lejemaal") * _DAYS_IN_YEAR.dt.total_days()},
)
