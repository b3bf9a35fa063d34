"""Stroke Studio's editing engine: SDEdit, edit-friendly DDPM inversion and Imagic.

Public API (stable): `load_model`, `sdedit`, `invert`, `edit`, `color_edit`, `shift`, `imagic`,
`final`, and the config dataclasses. Names that need torch are imported lazily, so
`import editing.interface` (what the UI uses) never loads torch.
"""

from editing.interface import (
    ColorEditConfig,
    EditConfig,
    Frame,
    Guide,
    InversionConfig,
    SDEditConfig,
    ShiftConfig,
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

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'editing' has no attribute {name!r}")


__all__ = [
    "ColorEditConfig",
    "EditConfig",
    "Frame",
    "Guide",
    "InversionConfig",
    "SDEditConfig",
    "ShiftConfig",
    "final",
    *_LAZY,
]
