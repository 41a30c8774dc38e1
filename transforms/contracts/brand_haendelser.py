from transforms.contracts import KOMMUNEKODE, OMRAADE, Column, Contract

CONTRACT = Contract(
    source="brand_haendelser",
    description="Fire incidents, one row per incident (municipal fire service).",
    columns=(
        Column("haendelses_id", "Hændelses-ID", "text", "The fire service's id of the incident; unique within the source.",
               aliases=("Haendelses-ID", "Hændelses ID")),
        Column("dato", "Dato", "date", "Date of the incident (YYYY-MM-DD)."),
        KOMMUNEKODE,
        OMRAADE,
        Column("haendelsestype", "Hændelsestype", "text", "Påsat brand, Bilbrand, Containerbrand or Anden brand.",
               aliases=("Haendelsestype", "Type")),
    ),
    unique_across_deliveries="haendelses_id",
    partition_by=("kommunekode", "year:dato"),
)
