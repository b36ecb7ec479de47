"""Hostile values: subclasses that lie about what they hold, objects whose
dunder methods raise, mappings that change between reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class LyingFloat(float):
    """Holds one value; float(), repr() and comparisons claim another."""

    claims: float

    def __new__(cls, value: float, claims: float) -> LyingFloat:
        obj = super().__new__(cls, value)
        obj.claims = claims
        return obj

    def __float__(self) -> float:
        return self.claims

    def __repr__(self) -> str:
        return repr(self.claims)

    def __gt__(self, other: object) -> bool:
        return self.claims > other  # type: ignore[operator]

    def __lt__(self, other: object) -> bool:
        return self.claims < other  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        return self.claims <= other  # type: ignore[operator]

    def __ge__(self, other: object) -> bool:
        return self.claims >= other  # type: ignore[operator]

    def __mul__(self, other: object) -> float:
        return self.claims * other  # type: ignore[operator]


class LyingStr(str):
    """Holds one string; lower(), str() and == claim another."""

    claims: str

    def __new__(cls, value: str, claims: str) -> LyingStr:
        obj = super().__new__(cls, value)
        obj.claims = claims
        return obj

    def lower(self) -> str:  # type: ignore[override]
        return self.claims.lower()

    def __str__(self) -> str:
        return self.claims

    def __eq__(self, other: object) -> bool:
        return self.claims == other

    def __hash__(self) -> int:
        return hash(self.claims)


class RaisingBool:
    """Every dunder a careless caller might touch raises."""

    def __bool__(self) -> bool:
        raise RuntimeError("__bool__")

    def __float__(self) -> float:
        raise RuntimeError("__float__")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("__lt__")

    def __gt__(self, other: object) -> bool:
        raise RuntimeError("__gt__")


class ShiftingMapping(Mapping[str, Any]):
    """A mapping whose values change once read: the first read of each key
    answers from the first version, every later read from the second. A
    reader that judges one copy and acts on another would be caught."""

    def __init__(self, first: Mapping[str, Any], later: Mapping[str, Any]) -> None:
        self._first = first
        self._later = later
        self._seen: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key in self._seen:
            return self._later[key]
        self._seen.add(key)
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)
