"""Typed reads of an exported model's metadata: each value checked before a recipe uses it,
so metadata of the wrong type is one `ModelError` naming the key, never a stray exception."""

from __future__ import annotations

import math
from typing import Any

from .onnxfile import ModelError

MAX_ITEMS = 10_000_000


class Fields:
    """A metadata object (`data_state`, `runtime.settings`) with checked getters."""

    def __init__(self, values: Any, where: str, file: str):
        if not isinstance(values, dict):
            raise ModelError(f"{file}: metadata {where} must be a JSON object")
        self.values, self.where, self.file = values, where, file

    def _bad(self, key: str, what: str) -> ModelError:
        return ModelError(f"{self.file}: metadata {self.where}.{key} must be {what}")

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def strings(self, key: str, *, unique: bool = True, empty: bool = False) -> list[str]:
        value = self.values.get(key)
        if (
            not isinstance(value, list)
            or len(value) > MAX_ITEMS
            or not all(isinstance(v, str) for v in value)
            or (not empty and not value)
        ):
            raise self._bad(key, "a list of strings")
        if unique and len(set(value)) != len(value):
            raise self._bad(key, "a list of distinct strings")
        return value

    def integer(self, key: str, low: int = 0, high: int = 2**31, default: Any = ...) -> int:
        value = self.values.get(key, default)
        if value is ... or isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, f"a whole number from {low} to {high}")
        if not low <= value <= high:
            raise self._bad(key, f"a whole number from {low} to {high}")
        return value

    def integers(self, key: str, low: int, high: int) -> list[int]:
        value = self.values.get(key)
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise self._bad(key, "a list of whole numbers")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise self._bad(key, f"a list of whole numbers from {low} to {high}")
        return value

    def numbers(self, key: str, count: int) -> list[float]:
        value = self.values.get(key)
        if (
            not isinstance(value, list)
            or len(value) != count
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value)
        ):
            raise self._bad(key, f"a list of {count} finite numbers")
        return [float(v) for v in value]

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def text(self, key: str, default: Any = ...) -> str:
        value = self.values.get(key, default)
        if not isinstance(value, str) or len(value) > 10_000:
            raise self._bad(key, "a string")
        return value
