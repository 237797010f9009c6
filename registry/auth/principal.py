"""Who is calling: the principal every authorization decision is about."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    arn: str
    account: str
    kind: str  # "anonymous", "user", "root", "service"
    name: str = ""
    user_id: str = ""
    access_key_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal(arn="*", account="", kind="anonymous")
