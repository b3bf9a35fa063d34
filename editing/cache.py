"""Content-keyed caches for the expensive parts (inversions, Imagic states).

A key is a hash of everything that changes the result: the image bytes, prompts, the model's id and
weights hash, and every config field. Moving a cheap slider (T_skip, target guidance, eta of
Imagic) reuses the entry; a new seed or image makes a new key, so it really recomputes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


def _feed(h: hashlib._Hash, part: Any) -> None:
    if isinstance(part, np.ndarray):
        h.update(b"nd")
        h.update(str((part.dtype.str, part.shape)).encode())
        h.update(np.ascontiguousarray(part).tobytes())
    elif dataclasses.is_dataclass(part) and not isinstance(part, type):
        h.update(type(part).__name__.encode())
        h.update(json.dumps(dataclasses.asdict(part), sort_keys=True, default=str).encode())
    elif isinstance(part, (list, tuple)):
        h.update(b"seq%d" % len(part))
        for p in part:
            _feed(h, p)
    elif isinstance(part, dict):
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    else:
        h.update(repr(part).encode())
    h.update(b"|")


def content_key(*parts: Any) -> str:
    """sha256 over images (bytes, dtype, shape), dataclass configs, strings and numbers."""
    h = hashlib.sha256()
    for p in parts:
        _feed(h, p)
    return h.hexdigest()


class LRUCache:
    """A small thread-safe LRU map; `hits` and `misses` are counted for tests and the UI."""

    def __init__(self, maxsize: int = 4):
        if maxsize < 1:
            raise ValueError(f"maxsize={maxsize} must be >= 1")
        self.maxsize = maxsize
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
