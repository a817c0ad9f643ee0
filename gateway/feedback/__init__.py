"""Feedback on interactions: `POST /v1/feedback`, browser tokens, corrections' edit distance.

    tokens.py    sign and check `Flywheel-Feedback-Token` (on the inference hot path)
    recent.py    ids this process issued lately, accepted before the recorder writes their row
    validate.py  request body -> events, naming every bad field
    edits.py     Levenshtein distance of a correction to the answer, minor or major edit
    cors.py      CORS for `/v1/feedback` alone
    api.py       the handler: authorize, resolve the interaction, store (awaited)

The feedback event itself (`Feedback`, `latest()`) is a shared record: gateway/records/feedback.py,
which the stores import without importing this package.
"""
