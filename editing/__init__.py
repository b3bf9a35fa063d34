"""Stroke Studio's editing engine: SDEdit, edit-friendly DDPM inversion and Imagic.

Public API (stable): `load_model`, `sdedit`, `invert`, `edit`, `color_edit`, `shift`, `imagic`,
`final`, the config dataclasses and `config_for` (a config with the model's own defaults). Names that need torch are imported lazily, so
`import editing.interface` (what the UI uses) never loads torch.
"""

import sys
import types

from editing.interface import (
    ColorEditConfig,
    EditConfig,
    Frame,
    Guide,
    InversionConfig,
    SDEditConfig,
    ShiftConfig,
    config_for,
    final,
)

_LAZY = {
    "load_model": "editing.models",
    "sdedit": "editing.sdedit",
    "invert": "editing.inversion",
    "edit": "editing.inversion",
    "color_edit": "editing.inversion",
    "shift": "editing.inversion",
    "Inversion": "editing.inversion",
    "imagic": "editing.imagic",
    "ImagicConfig": "editing.imagic",
    "ImagicState": "editing.imagic",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'editing' has no attribute {name!r}")


class _Package(types.ModuleType):
    """`import editing.sdedit` binds the submodule as the package attribute `sdedit`, which would
    shadow the public function `editing.sdedit` (likewise `imagic`). Keep the function: the
    submodules stay importable by their full names through sys.modules."""

    def __setattr__(self, name: str, value) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


_SHADOWED = {"sdedit", "imagic"}
sys.modules[__name__].__class__ = _Package


__all__ = [
    "ColorEditConfig",
    "EditConfig",
    "Frame",
    "Guide",
    "InversionConfig",
    "SDEditConfig",
    "ShiftConfig",
    "config_for",
    "final",
    *_LAZY,
]
