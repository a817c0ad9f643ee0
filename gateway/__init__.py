"""Flywheel: an OpenAI-compatible LLM gateway that records every interaction."""

__version__ = "0.1.0"
