"""Datasets from traffic: select -> anonymize -> format -> check -> dedup -> split -> files.

`selection` reads interactions with their feedback from the store, page by page, and applies
the filters; `anonymize` takes personal data out of each example before any format sees it;
`history` marks the turns of a prompt's history that the user threw away, so no format trains on
them; `formats/` turns examples into one format's records (one module each), `pairing` finds
the preference pairs that need several examples, and `schema` declares every format's field
types; `curate` removes duplicates and splits train/validation by user; `run` ties them together
and writes the files into a clean folder (`output`) with a schema and dataset card (`card`) and
a `manifest.json` saying what was kept and what was dropped, and why.
"""
