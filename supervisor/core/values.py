"""Reading values from outside: their true value, never what their methods claim.

A caller may hand us a `float` subclass whose `__float__` lies, a `str`
subclass whose `lower()` says "buy" while it holds "sell", or an object whose
`__repr__` raises or returns 10 MB. These helpers read the value stored in the
built-in base type (subclass methods are never called), and render anything
for a message in bounded time and length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

__all__ = ["plain_float", "plain_str", "shorten", "slot_setters"]

SlotSetter = Callable[[object, Any], None]


def slot_setters(cls: type, *names: str) -> tuple[SlotSetter, ...]:
    """The slot descriptors' setters of a slotted (frozen) dataclass, in order: a
    builder that sets every field through them makes the same object as the
    generated __init__, without its per-field object.__setattr__."""
    return tuple(getattr(cls, name).__set__ for name in names)


def plain_float(value: object) -> float | None:
    """The finite float an int or float really holds (bools excluded), else None."""
    # type(), not isinstance(): isinstance() believes an object's `__class__`.
    # The exact types come first and cost one comparison: this runs per order.
    if type(value) is float:
        return value if math.isfinite(value) else None
    kind = type(value)
    if kind is bool:
        return None
    if kind is int or (issubclass(kind, int) and not issubclass(kind, bool)):
        try:
            f = float(int.__int__(cast("int", value)))
        except OverflowError:
            return None
    elif issubclass(kind, float):
        f = float.__float__(cast("float", value))
    else:
        return None
    return f if math.isfinite(f) else None


def plain_str(value: object) -> str | None:
    """The plain `str` a str (or subclass) really holds, else None."""
    if type(value) is str:
        return value
    if issubclass(type(value), str):
        return str.__str__(cast("str", value))
    return None


def shorten(value: object, limit: int = 60) -> str:
    """A short, safe rendering of any value for a reason or a log line.

    Strings are cut before they are rendered (a 10 MB string costs nothing);
    anything but a plain number, bool or None is named by its type only, so a
    hostile `__repr__` is never called.
    """
    text = plain_str(value)
    if text is not None:
        return repr(text[:limit]) + ("..." if len(text) > limit else "")
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return repr(value)
    if kind is int:
        number = cast("int", value)
        return repr(number) if -(10**18) < number < 10**18 else f"<int of {number.bit_length()} bits>"
    return f"<{kind.__name__}>"
