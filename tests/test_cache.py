"""Content keys change with every input that changes a result, and only with those."""

import dataclasses

import numpy as np
import pytest

from editing.cache import LRUCache, content_key
from editing.interface import EditConfig, InversionConfig


def test_content_key_tracks_pixels_shape_and_config():
    img = np.zeros((4, 4, 3), np.uint8)
    k = content_key(img, "a cat", InversionConfig())
    assert k == content_key(img.copy(), "a cat", InversionConfig())
    other = img.copy()
    other[0, 0, 0] = 1
    assert content_key(other, "a cat", InversionConfig()) != k
    assert content_key(img.reshape(2, 8, 3), "a cat", InversionConfig()) != k
    assert content_key(img, "a dog", InversionConfig()) != k
    assert content_key(img, "a cat", InversionConfig(seed=1)) != k
    assert content_key(img, "a cat", dataclasses.replace(InversionConfig(), eta=0.5)) != k
    # same field values in another config class are another key
    assert content_key(EditConfig()) != content_key(InversionConfig())


def test_lru_evicts_oldest_and_counts():
    c = LRUCache(maxsize=2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now most recent
    c.put("c", 3)
    assert "b" not in c and "a" in c and "c" in c
    assert c.get("b") is None
    assert (c.hits, c.misses) == (1, 1)
    with pytest.raises(ValueError):
        LRUCache(0)
