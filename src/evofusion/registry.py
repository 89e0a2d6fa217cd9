"""Name -> factory tables (timm's register/create/list pattern).

Strategies, operators, objectives, KD losses and teachers are all created by name from the CLI and
config. A duplicate name raises; an unknown name raises with the list of valid ones. Third-party
packages add entries through the ``evofusion.<kind>`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A table of named factories of one kind (e.g. ``"operators"``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}
        self._plugins_loaded = False

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@REGISTRY.register("name")`` adds a factory; a duplicate name raises."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name or factory.__name__, factory)
            return factory

        return deco

    def add(self, name: str, factory: Callable[..., T]) -> None:
        if name in self._items:
            raise KeyError(f"{self.kind} '{name}' is already registered")
        self._items[name] = factory

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=f"evofusion.{self.kind}"):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._items:
            self._load_plugins()
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} '{name}'; valid: {', '.join(self.names())}")
        return self._items[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._items


def import_object(path: str, field: str) -> Any:
    """The object at ``"package.module:attribute"`` (attribute may be dotted); ConfigError naming
    ``field`` and what is missing (a module that does not import, an attribute it lacks)."""
    import importlib

    from evofusion.errors import ConfigError

    if not isinstance(path, str) or ":" not in path:
        raise ConfigError(field, f"must be an import path 'package.module:name', got {path!r}")
    mod_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(field, f"cannot import {mod_name!r} ({e}); is it installed or on PYTHONPATH?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(field, f"{mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def import_callable(path: str, field: str) -> Any:
    """``import_object`` that must be callable (a user's function named in a config); ConfigError
    naming ``field`` otherwise."""
    from evofusion.errors import ConfigError

    fn = import_object(path, field)
    if not callable(fn):
        raise ConfigError(field, f"{path} is not callable")
    return fn
