"""Builds the offline emoji corpus and trains the project's own models (see DESIGN.md)."""
