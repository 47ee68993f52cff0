"""The GraphQL context: runtime, loaders and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.auth import LOCAL_DEVELOPER, Principal
from api.bootstrap import Runtime
from api.loaders import Loaders


@dataclass
class Context:
    """Built per HTTP request and per WebSocket connection (loaders refresh per event)."""

    runtime: Runtime
    request: Any = None
    response: Any = None
    principal: Principal = LOCAL_DEVELOPER
    connection_params: dict[str, Any] = field(default_factory=dict)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.runtime)

    def refresh_loaders(self) -> None:
        """New DataLoader caches: call before resolving each subscription event."""
        self.loaders = Loaders(self.runtime)
