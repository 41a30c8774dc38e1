from transforms.sources import (
          KOMMUNEKODE,
          OMRAADE,
          Column,
          Contract,
          Events,
          date_since_2000,
          one_of,
)

CATEGORIES = ("Hærværk", "Indbrud", "Vold", "Tyveri", "Narkotika", "Brandstiftelse", "Andet")
_SLUGS = {"Hærværk": "haervaerk", "Indbrud": "indbrud", "Vold": "vold", "Tyveri": "tyveri", "Narkotika": "narkotika",
          "Brandstiftelse": "brandstiftelse", "Andet": "andet"}

CONTRACT = Contract(
    source="politi_anmeldelser",
    description="Reported incidents, one row per report (police, monthly or yearly files).",
    columns=(
        Column("anmeldelses_id", "Anmeldelses-ID", "text", "The police's id of the report; unique within the source.",
               aliases=("Anmeldelses ID", "AnmeldelsesID", "Anmeldelsesnummer")),
        Column("anmeldt_dato", "Anmeldt dato", "date", "Date the incident was reported (YYYY-MM-DD).",
               aliases=("Anmeldelsesdato", "Dato"), checks=(date_since_2000("Anmeldt dato"),)),
        KOMMUNEKODE,
        OMRAADE,
        Column("kategori", "Kategori", "text", "Hærværk, Indbrud, Vold, Tyveri, Narkotika, Brandstiftelse or Andet.",
               checks=(one_of("Kategori", CATEGORIES),)),
    ),
    levels=("area",),  # Område names an area or is empty; kommune totals are all rows of the kommune
    key=("anmeldelses_id",),
    unique_across_deliveries="anmeldelses_id",
    partition_by=("kommunekode", "month:anmeldt_dato"),
    events=Events(date="anmeldt_dato", type="kategori", total="anmeldelser",
                  counts={category: f"anmeldelser_{_SLUGS[category]}" for category in CATEGORIES}),
)
