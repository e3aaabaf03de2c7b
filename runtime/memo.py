"""A small bounded map of values made from inputs that never change under their key (parsed
terms by digest, a parsed file by its identity): made once, shared by every request."""

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Thread-safe; emptied whole when full (the keys in use come back at once)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: dict[K, V] = {}

    def peek(self, key: K) -> V | None:
        """The value for `key` if made already (to make many at once, then `put` them)."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[key] = value

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for `key`, made by `make` if absent (an exception stores nothing)."""
        with self._lock:
            hit = self._items.get(key)
        if hit is None:
            hit = make()
            self.put(key, hit)
        return hit
