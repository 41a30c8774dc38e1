from transforms.contracts import KOMMUNEKODE, OMRAADE, Column, Contract

CONTRACT = Contract(
    source="politi_anmeldelser",
    description="Reported incidents, one row per report (police, monthly or yearly files).",
    columns=(
        Column("anmeldelses_id", "Anmeldelses-ID", "text", "The police's id of the report; unique within the source.",
               aliases=("Anmeldelses ID", "AnmeldelsesID", "Anmeldelsesnummer")),
        Column("anmeldt_dato", "Anmeldt dato", "date", "Date the incident was reported (YYYY-MM-DD).",
               aliases=("Anmeldelsesdato", "Dato")),
        KOMMUNEKODE,
        OMRAADE,
        Column("kategori", "Kategori", "text", "Hærværk, Indbrud, Vold, Tyveri, Narkotika, Brandstiftelse or Andet."),
    ),
    unique_across_deliveries="anmeldelses_id",
    partition_by=("kommunekode", "month:anmeldt_dato"),
)
