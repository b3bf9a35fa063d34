"""Gradio's image cache, written atomically.

Gradio turns every image a handler returns (each streamed preview, each result, each gallery
item) into a file named by the hash of its bytes, and writes that file again each time, in place
(`processing_utils.save_pil_to_cache`: `Path.write_bytes`, which truncates first). Two runs that
produce the same picture, such as two visitors running the example at the default seed, or the
same preview step of two queued runs, share that file: while one run rewrites it, the other's
browser (or API client) can read it truncated, and its download fails ("peer closed connection
without sending complete message body"). `tests/test_gradio_cache.py` shows it: reading while the
same image is cached again saw 0 bytes in about 6 % of reads.

Gradio already copies files into its cache under a temporary name and renames them into place
(`save_file_to_cache`); `install()` gives images the same treatment: write once under a staging
name, `os.replace` into place (`editing.recipe.write_atomic`, which the result files use too), and
leave an existing copy alone (its name is its content's hash).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gradio import processing_utils
from gradio.profiling import traced_sync

from editing.recipe import write_atomic


@traced_sync("postprocess_save_pil_to_cache")
def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """`gradio.processing_utils.save_pil_to_cache`, same arguments and path, never a partial file."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)  # Gradio's delete_cache ages files by time; a copy handed out again is fresh
        return str(path)
    return str(write_atomic(path, data))


def install() -> None:
    """Route Gradio's image caching (Image, Gallery, AnnotatedImage outputs) through `save_pil_to_cache`.

    Gradio's callers look the function up on the module at call time, so replacing the attribute
    is enough; calling this again changes nothing."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
