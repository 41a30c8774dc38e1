import polars as pl

from transforms.contracts import AAR, KOMMUNEKODE, OMRAADE, Column, Contract

CONTRACT = Contract(
    source="politi_tryghed",
    description="The police's yearly safety survey (tryghedsmåling): weighted shares per area, kommune and nation.",
    columns=(
        AAR,
        KOMMUNEKODE,
        OMRAADE,
        Column("andel_trygge", "Andel trygge (%)", "decimal", "Weighted share (%) answering 1-3: feel safe.",
               aliases=("Andel trygge", "Trygge (%)")),
        Column("andel_utrygge", "Andel utrygge (%)", "decimal", "Weighted share (%) answering 5-7: feel unsafe.",
               aliases=("Andel utrygge", "Utrygge (%)")),
        Column("respondenter", "Respondenter", "int", "Number of respondents; may be empty for national levels."),
    ),
    partition_by=("kommunekode", "aar"),
    rule_columns={"andel_trygge_og_utrygge": pl.col("andel_trygge") + pl.col("andel_utrygge")},
)
