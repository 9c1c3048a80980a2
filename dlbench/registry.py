"""Name -> object maps from which the CLI takes its choices."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from dlbench.errors import DlbenchError, UnknownName

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """An ordered name -> entry map whose failed look-ups list the valid names.

    >>> ACTIVATIONS = Registry("activation")
    >>> @ACTIVATIONS.register("relu")
    ... def relu(x): ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str):
        """Decorator form of `add`."""
        return lambda entry: self.add(name, entry)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(self.kind, name, self._entries) from None

    def parse_list(self, text: str | None) -> list[str]:
        """'a,b' -> ['a', 'b'] after checking each name; None or '' or 'all' -> every name."""
        if not text or text.strip() == "all":
            return list(self._entries)
        names = [n.strip() for n in text.split(",")]
        if "" in names:
            raise DlbenchError(f"{text!r}: an empty {self.kind} name in the list")
        for n in names:
            self[n]
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise DlbenchError(f"{text!r}: {self.kind} {twice!r} is named twice")
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
