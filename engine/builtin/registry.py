"""Name -> class registries, keyed by class name as in Dassl and detectron2."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.names import close_matches


def check_availability(requested: str, available: Iterable[str]) -> None:
    """Raise a ValueError naming the closest available name when ``requested`` is unknown."""
    if requested not in available:
        hint = close_matches(requested, available)
        did_you_mean = f" (do you mean [{hint[0]}]?)" if hint else ""
        raise ValueError(
            f"The requested one is expected to belong to {sorted(available)}, "
            f"but got [{requested}]{did_you_mean}"
        )


class Registry:
    """A map from names to objects, filled with the ``@REG.register()`` decorator.

    A duplicate name is an error unless ``force=True``; ``get`` of an unknown name raises KeyError.
    """

    def __init__(self, name: str):
        self._name = name
        self._obj_map = {}

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        if name in self._obj_map and not force:
            first, again = (getattr(o, "__module__", "?") for o in (self._obj_map[name], obj))
            raise KeyError(f'An object named "{name}" was already registered in "{self._name}" registry (by module '
                           f'{first}); module {again} registers it again: rename one of them')
        self._obj_map[name] = obj

    def register(self, obj: Any = None, force: bool = False) -> Any:
        if obj is None:
            def wrapper(fn_or_class: Callable) -> Callable:
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._obj_map:
            hint = close_matches(name, self._obj_map)
            did_you_mean = f' Did you mean "{hint[0]}"?' if hint else ""
            raise KeyError(f'Object name "{name}" does not exist in "{self._name}" registry.{did_you_mean}')
        return self._obj_map[name]

    def registered_names(self) -> list[str]:
        return list(self._obj_map.keys())
