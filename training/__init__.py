"""Builds the offline emoji corpus and trains the project's own models (see DESIGN.md)."""

import argparse
import re
from pathlib import Path

import numpy as np


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every flag's --help line ends with its default, flags without a help text included (argparse
    prints nothing at all for those)."""
    for action in parser._actions:
        if action.default in (None, argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            continue
        action.help = (action.help + " " if action.help else "") + "(default: %(default)s)"
    return parser


def open_corpus(path: str | Path) -> np.lib.npyio.NpzFile:
    """The corpus file (np.load), or an exit with one sentence that says how to build it: a missing
    corpus was a FileNotFoundError traceback from every script that reads one."""
    path = Path(path)
    if not path.is_file():
        size = re.fullmatch(r"emoji(\d+)\.npz", path.name)
        build = f"python -m training.corpus --out {path.parent}" + (f" --size {size[1]}" if size else "")
        raise SystemExit(f"No corpus at {path}: build it with `{build}` (it writes emoji<size>.npz there), or pass --corpus.")
    return np.load(path)
