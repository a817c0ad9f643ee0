"""Exporters: turn recorded traffic and feedback into fine-tuning datasets."""
