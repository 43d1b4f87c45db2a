"""What a check found wrong, named by the object and the field path at fault."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def describe(obj: dict[str, Any]) -> str:
    """``Kind namespace/name`` (``Kind name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "<unnamed>")
    namespace = meta.get("namespace")
    return (
        f"{obj.get('kind', '<no kind>')} {namespace}/{name}"
        if namespace
        else (f"{obj.get('kind', '<no kind>')} {name}")
    )


def field_path(parts: Iterable[Any]) -> str:
    """``("spec", "containers", 0, "image")`` → ``spec.containers[0].image``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


@dataclass(frozen=True)
class Finding:
    """One failure: which check, which object, where in it, and what is wrong."""

    check: str
    target: str
    path: str
    message: str

    @classmethod
    def at(cls, check: str, obj: dict[str, Any], parts: Iterable[Any], message: str) -> Finding:
        return cls(check, describe(obj), field_path(parts), message)

    def __str__(self) -> str:
        return f"[{self.check}] {self.target}: {self.path}: {self.message}"
