"""Builds the offline emoji corpus and trains the project's own models (see DESIGN.md)."""

import argparse


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every flag's --help line ends with its default, flags without a help text included (argparse
    prints nothing at all for those)."""
    for action in parser._actions:
        if action.default in (None, argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            continue
        action.help = (action.help + " " if action.help else "") + "(default: %(default)s)"
    return parser
