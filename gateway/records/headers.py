"""Header names of the contract: clients, browser scripts and dashboards depend on them."""

from __future__ import annotations

# On every inference response, errors included.
INTERACTION_HEADER = "Flywheel-Interaction-Id"  # the UUIDv7 feedback refers to
VARIANT_HEADER = "Flywheel-Variant"  # the A/B arm that answered
# Also accepted on `POST /v1/feedback`, in place of an API key (gateway/feedback/tokens.py).
FEEDBACK_TOKEN_HEADER = "Flywheel-Feedback-Token"
