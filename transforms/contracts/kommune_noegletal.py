from transforms.contracts import Column, Contract

CONTRACT = Contract(
    source="kommune_noegletal",
    description="Municipal key figures as numerator/denominator per area and indicator, yearly (kommune).",
    columns=(
        Column("aar", "År", "int", "Calendar year of the figure.", aliases=("Aar", "Year")),
        Column("kommunekode", "Kommunekode", "int", "Danish kommune code.", aliases=("Kommune",)),
        Column("omraade", "Område", "text", "Area name or alias, or `Hele kommunen`.", aliases=("Omraade",)),
        Column("indikator", "Indikator", "text",
               "Municipal indicator id from the catalog, or befolkning, befolkning_15_29, befolkning_18plus."),
        Column("taeller", "Tæller", "decimal",
               "Numerator; for karakter_9kl_gns the sum of grades; the head count for befolkning*.",
               aliases=("Taeller",)),
        Column("naevner", "Nævner", "int", "Denominator; empty for befolkning*.", aliases=("Naevner",)),
    ),
    partition_by=("kommunekode", "aar"),
    formats=("csv", "xlsx"),
)
