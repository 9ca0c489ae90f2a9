"""Registries of named kinds (visual prompts, aggregations): ``@register`` by the class's ``kind``, a lookup
that answers an unknown name with the closest registered one and the list, and a class's config keys."""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from engine.names import close_matches

if TYPE_CHECKING:
    from yacs.config import CfgNode

KindClass = TypeVar("KindClass", bound=type)  # a registered class keeps its own type through the decorator


class KindRegistry:
    """Classes by their (lower-case) ``kind`` attribute; ``what`` names them in messages."""

    def __init__(self, what: str):
        self.what = what
        self.classes: dict[str, type] = {}

    def register(self, cls: KindClass) -> KindClass:
        """Class decorator: registers ``cls`` under ``cls.kind``; a name taken twice is an error naming both."""
        name = str(cls.kind).lower()
        if name in self.classes:
            old = self.classes[name]
            raise KeyError(f'A {self.what} named "{name}" is already registered by {old.__module__}.{old.__name__}; '
                           f"{cls.__module__}.{cls.__name__} needs another name.")
        self.classes[name] = cls
        return cls

    def names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def get(self, kind: str, key: str) -> type:
        """The class registered as ``kind`` (case-insensitive); ``key`` is the config key that named it."""
        name = str(kind).lower()
        if name in self.classes:
            return self.classes[name]
        close = close_matches(name, self.classes, n=1)
        hint = f' Did you mean "{close[0]}"?' if close else ""
        raise ValueError(f'Unknown {self.what} "{kind}" ({key}).{hint} Registered kinds: {", ".join(self.names())}.')


def settings_of(cls: type, node: CfgNode) -> dict:
    """The class's own keys (``CONFIG_KEYS``) of a trainer node, lower-cased: its keyword arguments."""
    return {key.lower(): node[key] for key in cls.CONFIG_KEYS}
