"""One registry shape for every pluggable piece (selection strategies, benchmarks).

A piece is a class with a ``name``, registered by a decorator; its package lists the
built-in modules, imported on first lookup. An unknown name is a ConfigError listing what is
registered, raised before anything runs.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from alpagasus.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, package: str, builtin: tuple[str, ...], key: str):
        self.what, self.package, self.builtin, self.key = what, package, builtin, key
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = cls.name  # type: ignore[attr-defined]
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.what} '{name}' is registered twice")
        self._classes[name] = cls
        return cls

    def all(self) -> dict[str, type[T]]:
        for module in self.builtin:
            importlib.import_module(f"{self.package}.{module}")
        return dict(self._classes)

    def get(self, name: str, key: str | None = None) -> T:
        classes = self.all()
        if name not in classes:
            raise ConfigError(f"{key or self.key}={name}: not a {self.what} "
                              f"(registered: {', '.join(sorted(classes))})")
        return classes[name]()
