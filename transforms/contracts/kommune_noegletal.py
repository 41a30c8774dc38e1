from transforms.contracts import AAR, KOMMUNEKODE, OMRAADE, Column, Contract

CONTRACT = Contract(
    source="kommune_noegletal",
    description="Municipal key figures as numerator/denominator per area and indicator, yearly (kommune).",
    columns=(
        AAR,
        KOMMUNEKODE,
        OMRAADE,
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
