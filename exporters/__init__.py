"""Datasets from traffic: select -> anonymize -> format -> check -> dedup -> split -> files.

`selection` reads interactions with their feedback from the store, page by page, and applies
the filters; `anonymize` takes personal data out of each example before any format sees it;
`formats/` turns examples into one format's records (one module each); `curate` removes
duplicates and splits train/validation by user; `run` ties them together and writes the files
with a `manifest.json` saying what was kept and what was dropped, and why.
"""
