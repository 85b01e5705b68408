"""Python forms of the Hessian values that have no exact built-in equivalent.

| Hessian                 | decodes to                        | encode also takes         |
|-------------------------|-----------------------------------|---------------------------|
| null / true / false     | ``None`` / ``True`` / ``False``   |                           |
| int (32-bit)            | ``int``                           |                           |
| long (64-bit)           | :class:`HessianLong` (an ``int``) | an ``int`` past 32 bits   |
| double                  | ``float``                         |                           |
| date                    | :class:`HessianDate` (epoch ms)   | ``datetime``              |
| string                  | ``str``                           |                           |
| binary                  | ``bytes``                         | ``bytearray``, memoryview |
| untyped list            | ``list``                          | ``tuple``                 |
| typed list              | :class:`HessianList` (a ``list``) |                           |
| untyped map             | ``dict``                          |                           |
| typed map               | :class:`HessianMap` (a ``dict``)  |                           |
| map, unhashable key     | :class:`MapEntries`               |                           |
| object (class def)      | :class:`HessianObject`            |                           |

Java objects are never instantiated: an object is its Java type name plus its fields, whatever
the name says (``java.lang.Runtime`` included).
"""

from __future__ import annotations

import datetime as _dt
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class HessianLong(int):
    """A Java ``long``: an ``int`` that the encoder writes in Hessian's long forms."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"HessianLong({int(self)})"


class HessianDate:
    """A ``java.util.Date``: milliseconds since the Unix epoch (UTC), any 64-bit value."""

    __slots__ = ("millis",)

    millis: int

    def __init__(self, millis: int) -> None:
        self.millis = int(millis)

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> HessianDate:
        """A naive ``datetime`` is taken as UTC."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _EPOCH
        return cls((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)

    def to_datetime(self) -> _dt.datetime:
        """The UTC ``datetime``; raises ``OverflowError`` outside years 1..9999."""
        return _EPOCH + _dt.timedelta(milliseconds=self.millis)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HessianDate):
            return self.millis == other.millis
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("HessianDate", self.millis))

    def __repr__(self) -> str:
        return f"HessianDate({self.millis})"


class HessianList(list[Any]):
    """A typed list: its items plus the Java type name (``[int``, ``java.util.ArrayList``)."""

    __slots__ = ("type_name",)

    type_name: str | None

    def __init__(self, type_name: str | None, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HessianList) and other.type_name != self.type_name:
            return False
        return list.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        return f"HessianList({self.type_name!r}, {list.__repr__(self)})"


class HessianMap(dict[Any, Any]):
    """A typed map: its entries plus the Java type name (``java.util.LinkedHashMap``)."""

    __slots__ = ("type_name",)

    type_name: str | None

    def __init__(self, type_name: str | None, items: Mapping[Any, Any] | None = None) -> None:
        super().__init__(items or {})
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HessianMap) and other.type_name != self.type_name:
            return False
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        return f"HessianMap({self.type_name!r}, {dict.__repr__(self)})"


class MapEntries:
    """A map whose keys are not all hashable in Python (lists, maps, objects as keys).

    Kept as ordered ``(key, value)`` pairs; ``type_name`` is ``None`` for an untyped map.
    """

    __slots__ = ("entries", "type_name")

    def __init__(self, type_name: str | None, entries: Iterable[tuple[Any, Any]] = ()) -> None:
        self.type_name = type_name
        self.entries: list[tuple[Any, Any]] = list(entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MapEntries):
            return self.type_name == other.type_name and self.entries == other.entries
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.entries)

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        return f"MapEntries({self.type_name!r}, {self.entries!r})"


class HessianObject:
    """A Java object as data: its class name and its fields, in class-definition order.

    ``field_names`` may repeat a name (a subclass field shadowing a superclass field is
    written twice by Java); ``fields`` is then the last value per name. Nothing is looked up
    or instantiated by ``type_name``.
    """

    __slots__ = ("field_names", "type_name", "values")

    type_name: str
    field_names: tuple[str, ...]
    values: list[Any]

    def __init__(
        self,
        type_name: str,
        fields: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    ) -> None:
        self.type_name = type_name
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        self.field_names = tuple(name for name, _ in pairs)
        self.values = [value for _, value in pairs]

    @classmethod
    def _empty(cls, type_name: str, field_names: tuple[str, ...]) -> HessianObject:
        """An object whose values the decoder fills in (it is referenced before it is full)."""
        obj = cls.__new__(cls)
        obj.type_name = type_name
        obj.field_names = field_names
        obj.values = []
        return obj

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(self.field_names, self.values, strict=True))

    def __getitem__(self, name: str) -> Any:
        for i in range(len(self.field_names) - 1, -1, -1):
            if self.field_names[i] == name:
                return self.values[i]
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in self.field_names

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HessianObject):
            return (
                self.type_name == other.type_name
                and self.field_names == other.field_names
                and self.values == other.values
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self.field_names, self.values, strict=False))
        return f"HessianObject({self.type_name!r}, {inner})"
