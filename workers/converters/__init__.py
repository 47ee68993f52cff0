"""File converters: every supported format read into one normalised text and its segments."""

from workers.converters.registry import Converters

__all__ = ["Converters"]
