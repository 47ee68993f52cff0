"""Who is calling: what the review page asks before it enables decisions."""

from __future__ import annotations

import strawberry

from api.auth import LOCAL_DEVELOPER
from api.types.review import Caller


@strawberry.type
class ReviewQueries:
    @strawberry.field(description="The caller of this request: its key's name and role (the "
                                  "local developer, an operator, on a server without keys).")
    def me(self, info: strawberry.Info) -> Caller:
        principal = info.context.principal
        return Caller(name=principal.name, role=principal.role,
                      can_review=principal.allows("editor"),
                      keyless=principal is LOCAL_DEVELOPER)
