from transforms.sources import (
    KOMMUNEKODE,
    OMRAADE,
    Column,
    Contract,
    Events,
    date_since_2000,
    one_of,
)

EVENT_TYPES = ("Påsat brand", "Bilbrand", "Containerbrand", "Anden brand")

CONTRACT = Contract(
    source="brand_haendelser",
    description="Fire incidents, one row per incident (municipal fire service).",
    columns=(
        Column("haendelses_id", "Hændelses-ID", "text", "The fire service's id of the incident; unique within the source.",
               aliases=("Haendelses-ID", "Hændelses ID")),
        Column("dato", "Dato", "date", "Date of the incident (YYYY-MM-DD).", checks=(date_since_2000("Dato"),)),
        KOMMUNEKODE,
        OMRAADE,
        Column("haendelsestype", "Hændelsestype", "text", "Påsat brand, Bilbrand, Containerbrand or Anden brand.",
               aliases=("Haendelsestype", "Type"), checks=(one_of("Hændelsestype", EVENT_TYPES),)),
    ),
    levels=("area",),
    key=("haendelses_id",),
    unique_across_deliveries="haendelses_id",
    partition_by=("kommunekode", "year:dato"),
    events=Events(date="dato", type="haendelsestype", counts={"Påsat brand": "paasatte_brande"}),
)
