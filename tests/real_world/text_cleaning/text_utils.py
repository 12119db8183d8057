"""Helpers the normalize notebook imports (a local module, carried by a files glob)."""

import re

STOP_WORDS = {"the", "a", "an", "new", "model"}


def normalize_title(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    return " ".join(w for w in words if w not in STOP_WORDS and not w.isdigit())
