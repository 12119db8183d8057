"""Build hook: say in one line what building promoter from source needs.

The JupyterLab extension (``labextension/``, TypeScript) is built by hatch-jupyter-builder with
``jlpm``, which needs Node.js. A wheel built by ``make dist`` carries it prebuilt, and so does an
sdist: only a build from a git checkout without ``promoter/labextension/`` needs Node. Without
it, this hook stops the build with one line that says what to do, before the builder's traceback.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: What the jupyter-builder hook builds; present in a wheel's or an sdist's tree.
BUILT = Path("promoter") / "labextension" / "static" / "style.js"

MESSAGE = (
    "error: building promoter from source builds its JupyterLab extension, which needs "
    "Node.js 20 (`node` is not on PATH): install Node.js 20 (https://nodejs.org), or install "
    "the wheel `make dist` builds (no Node needed)"
)


class CustomBuildHook(BuildHookInterface):
    """Runs before the jupyter-builder hook (listed first in pyproject.toml)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Stop with one clear line when the extension must be built and Node is missing."""
        if self.target_name != "wheel" or (Path(self.root) / BUILT).is_file():
            return
        if shutil.which("node") is None:
            print(MESSAGE, file=sys.stderr)
            raise SystemExit(1)
