"""A name -> entry registry: the surrogates and the fusion functions use one."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one ``kind``; registering a taken name is an error
    unless ``override=True`` (so that a typo cannot silently change every model
    in the process)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, override: bool = False) -> T:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not override:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass override=True to replace it"
            )
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        if name not in self._entries:
            raise ValueError(f"no {self.kind} {name!r} is registered")
        del self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {list(self.names())}")
        return self._entries[name]

    def snapshot(self) -> dict[str, T]:
        """A copy of the entries (for :meth:`restore`, e.g. in test fixtures)."""
        return dict(self._entries)

    def restore(self, snapshot: dict[str, T]) -> None:
        self._entries = dict(snapshot)
