"""The OpenAI-compatible request path: handlers, metadata, relay and capture."""
