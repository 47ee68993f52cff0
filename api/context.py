"""The GraphQL context: runtime, loaders and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.auth import LOCAL_DEVELOPER, Principal
from api.container import Container
from api.loaders import Loaders
from api.settings import Settings


@dataclass
class Context:
    """Built per HTTP request and per WebSocket connection (loaders refresh per event)."""

    runtime: Container
    request: Any = None
    response: Any = None
    principal: Principal = LOCAL_DEVELOPER
    connection_params: dict[str, Any] = field(default_factory=dict)
    settings: Settings | None = None  # the serving app's; None: the container's
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.runtime)

    @property
    def limits(self) -> Settings:
        """The settings whose limits and switches apply to this request's operations."""
        return self.settings if self.settings is not None else self.runtime.settings

    def refresh_loaders(self) -> None:
        """New DataLoader caches: call before resolving each subscription event."""
        self.loaders = Loaders(self.runtime)
