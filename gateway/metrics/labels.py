"""Label values stay bounded: configured models and providers keep their names, anything else is
`other`. A user's typo, or a model name made up per request, never becomes a new series."""

from __future__ import annotations

from gateway.config import Config

OTHER = "other"  # any model (or provider) not in the config
NONE = "none"  # no variant (a plain passthrough model), or no provider (rejected before routing)


class LabelBounds:
    """The model and provider names that may become label values; a config reload updates them."""

    __slots__ = ("models", "providers")

    def __init__(self, config: Config):
        self.update(config)

    def update(self, config: Config) -> None:
        self.models = frozenset(config.models)
        self.providers = frozenset(config.providers)

    def model(self, name: str | None) -> str:
        return name if name is not None and name in self.models else OTHER

    def provider(self, name: str) -> str:
        return name if name in self.providers else OTHER

    @staticmethod
    def variant(model: str, variant: str | None) -> str:
        """The variant label of a bounded `model`: an unknown model's variant is unknown too."""
        return (variant or NONE) if model != OTHER else NONE
