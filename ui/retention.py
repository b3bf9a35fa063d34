"""How long a studio keeps the files its runs leave: every streamed preview (Gradio caches each as a
file), the result PNGs with their recipes, and their inputs.

A shared studio runs for days; an SDEdit on the emoji model leaves about 30 files (0.2 MB) in
Gradio's cache, and a Stable Diffusion edit at 512 px some megabytes. Gradio's own `delete_cache`
misses most of them: it tracks files per component, and once a session holds its own copy of an
output component the files that copy caches are tracked nowhere (measured with Gradio 6.31: 30 of
31 previews of one run untracked), so they would stay until the disk is full.

So app.py gives the studio a Gradio cache folder of its own (`use_own_gradio_cache`, unless
GRADIO_TEMP_DIR names one) and `Retention.prune` deletes files older than `--keep-hours` there
and in the results folders (`ui.recipe.RESULTS_ROOT`: this studio's and those that studios run
before it left), when the studio starts and whenever a run is saved (at most once a minute): disk
use grows only with runs, so pruning as runs finish bounds it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

STUDIO_GRADIO_CACHE = Path(tempfile.gettempdir()) / "stroke-studio-gradio"


def use_own_gradio_cache() -> Path | None:
    """Point Gradio's cache at STUDIO_GRADIO_CACHE (before any Blocks is built: each reads it when
    made); None if GRADIO_TEMP_DIR already names a folder, which is then the user's and left alone."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    os.environ["GRADIO_TEMP_DIR"] = str(STUDIO_GRADIO_CACHE)
    return STUDIO_GRADIO_CACHE


class Retention:
    """Files older than `seconds` in `folders` go when `prune` runs; seconds None keeps everything
    (the default, and the command line's way: nothing is pruned outside a served studio)."""

    seconds: float | None = None
    folders: tuple[Path, ...] = ()
    protected: frozenset[Path] = frozenset()
    _last = 0.0

    @classmethod
    def keep(cls, seconds: float | None, *folders: Path, protect: set[str] | frozenset[str] = frozenset()) -> None:
        """`protect`: files the page itself shows for as long as it runs (the examples), and folders
        that stay even when empty (this studio's results folder): never pruned."""
        # Resolved once here, so that the paths prune walks compare with `protected` as they are.
        cls.seconds, cls.folders, cls._last = seconds, tuple(Path(f).resolve() for f in folders), 0.0
        cls.protected = frozenset(Path(f).resolve() for f in protect)

    @classmethod
    def prune(cls, now: float | None = None) -> int:
        """Delete the files older than `seconds` (and the folders they leave empty); returns how many went."""
        now = time.time() if now is None else now
        if cls.seconds is None or now - cls._last < min(60.0, cls.seconds):
            return 0
        cls._last = now
        gone = 0
        for folder in cls.folders:
            for root, dirs, files in os.walk(folder, topdown=False):
                for name in files:
                    path = Path(root, name)
                    with contextlib.suppress(FileNotFoundError):  # another thread may have taken it
                        if path not in cls.protected and now - path.stat().st_mtime > cls.seconds:
                            path.unlink()
                            gone += 1
                for name in dirs:
                    with contextlib.suppress(OSError):  # not empty, or gone
                        if Path(root, name) not in cls.protected:
                            Path(root, name).rmdir()
        return gone
