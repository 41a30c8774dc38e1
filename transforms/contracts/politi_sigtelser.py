from transforms.contracts import AAR, KOMMUNEKODE, OMRAADE, Column, Contract

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
)
