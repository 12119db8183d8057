"""Render the service files from the Jinja2 templates in ``templates/``."""

from __future__ import annotations

from pathlib import Path


def template_dir() -> Path:
    """The templates folder: inside the installed wheel, or at the root of a source checkout."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "templates"
