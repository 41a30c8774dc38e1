"""One Great Expectations suite per source, `<source>.json`, generated from its declaration (transforms/sources/suite.py)."""
