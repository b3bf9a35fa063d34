"""Stroke Studio's web UI (Gradio Blocks). Imports only the engine's torch-free interface."""

from ui.layout import CSS, THEME, build_ui

__all__ = ["CSS", "THEME", "build_ui"]
