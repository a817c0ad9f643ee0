"""Feedback on interactions: `POST /v1/feedback`, browser tokens, corrections' edit distance.

    tokens.py    sign and check `Flywheel-Feedback-Token` (on the inference hot path)
    recent.py    ids this process issued lately, accepted before the recorder writes their row
    event.py     one feedback event as stored, and the latest value of each field
    validate.py  request body -> events, naming every bad field
    edits.py     Levenshtein distance of a correction to the answer, minor or major edit
    cors.py      CORS for `/v1/feedback` alone
    api.py       the handler: authorize, resolve the interaction, store (awaited)

This package imports nothing from the store at import time beyond `event.py`, which the stores
themselves import.
"""
