"""Stroke Studio's web UI (Gradio Blocks). Imports only torch-free engine modules (editing.interface, editing.recipe and its editing.images)."""

from ui.layout import CSS, JS, THEME, build_ui

__all__ = ["CSS", "JS", "THEME", "build_ui"]
