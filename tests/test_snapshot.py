"""A golden snapshot of one whole generated service: every template change is a visible diff.

The shipping-quote example is converted with the real CLI; every file is compared with
``tests/snapshots/shipping_quote/`` after normalising what changes from one machine or release
to the next (promoter's version, pinned dependency versions, file hashes). To accept a change
to the templates, regenerate the snapshot and review its diff::

    PROMOTER_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_snapshot.py
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, run_cli

SNAPSHOT = Path(__file__).parent / "snapshots" / "shipping_quote"
_VERSION = re.compile(r"==[0-9][0-9A-Za-z.+\-]*")
_HASH = re.compile(r'"[0-9a-f]{64}"')
_PROMOTER = re.compile(r"promoter [0-9][0-9A-Za-z.+\-]*")


def normalised(text: str) -> str:
    """The file with versions and hashes replaced by placeholders."""
    text = _VERSION.sub("==<version>", text)
    text = _HASH.sub('"<sha256>"', text)
    text = re.sub(r'"promoter_version": "[^"]*"', '"promoter_version": "<version>"', text)
    return _PROMOTER.sub("promoter <version>", text)


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): normalised(p.read_text(encoding="utf-8"))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.slow
def test_generated_service_matches_the_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "shipping_quote"
    shutil.copy(EXAMPLES / "shipping_quote.ipynb", tmp_path / "shipping_quote.ipynb")
    result = run_cli("convert", tmp_path / "shipping_quote.ipynb", "-o", out)
    assert result.returncode == 0, result.output
    generated = _files(out)
    if os.environ.get("PROMOTER_UPDATE_SNAPSHOTS"):
        shutil.rmtree(SNAPSHOT, ignore_errors=True)
        for rel, text in generated.items():
            (SNAPSHOT / rel).parent.mkdir(parents=True, exist_ok=True)
            (SNAPSHOT / rel).write_text(text, encoding="utf-8")
    expected = _files(SNAPSHOT)
    assert sorted(generated) == sorted(expected)
    for rel, text in expected.items():
        assert generated[rel] == text, f"{rel} differs from tests/snapshots (see module doc)"
