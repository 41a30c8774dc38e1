"""One Great Expectations suite per source contract, `<source>.json` (see transforms/contracts)."""
