"""The GraphQL context: runtime, loaders and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.bootstrap import Runtime
from api.loaders import Loaders


@dataclass
class Principal:
    """Who is calling: a key's name and role, or the local developer."""

    name: str
    role: str


@dataclass
class Context:
    """Built per HTTP request, and per event for subscriptions (see `fresh`)."""

    runtime: Runtime
    request: Any = None
    response: Any = None
    principal: Principal = field(default_factory=lambda: Principal("local", "operator"))
    connection_params: dict[str, Any] = field(default_factory=dict)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.runtime)

    def refresh_loaders(self) -> None:
        """New DataLoader caches: call before resolving each subscription event."""
        self.loaders = Loaders(self.runtime)
