"""Helpers the tag notebook imports (a local module the notebook does not declare)."""

TAGS = {"coffee": "drinks", "espresso": "drinks", "slow": "service", "staff": "service"}


def tag_review(text: str) -> list[str]:
    return sorted({TAGS[w] for w in text.lower().split() if w in TAGS})
