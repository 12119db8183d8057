"""`make dist`: refuse a wheel that would install without its JupyterLab extension.

A build with ``HATCH_BUILD_NO_HOOKS=true`` (or a failed frontend build) gives a wheel without
``share/jupyter/labextensions/promoter-jupyterlab``: pip would install it silently and the
Promote button would never show. This names what is missing, and checks that the extension's
version is the package's.

Usage: ``python scripts/check_wheel.py dist/promoter-X-py3-none-any.whl``
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

EXTENSION = "share/jupyter/labextensions/promoter-jupyterlab"


def problems(wheel: Path) -> list[str]:
    """What the wheel lacks; empty when it is complete."""
    version = re.match(r"promoter-([^-]+)-", wheel.name)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        data = next((n.split("/", 1)[0] for n in names if ".data/" in n), "promoter.data")
        extension = f"{data}/data/{EXTENSION}"
        found = []
        if f"{extension}/package.json" not in names:
            return [f"no JupyterLab extension ({EXTENSION}): build it with Node.js 20 (make dist)"]
        package = json.loads(archive.read(f"{extension}/package.json"))
        if version is not None and package.get("version") != version.group(1):
            found.append(
                f"the JupyterLab extension is version {package.get('version')}, "
                f"the package {version.group(1)}"
            )
        if not any(n.startswith(f"{extension}/static/remoteEntry.") for n in names):
            found.append("the JupyterLab extension has no static/remoteEntry.*.js")
        config = f"{data}/data/etc/jupyter/jupyter_server_config.d/promoter.json"
        if config not in names:
            found.append("no jupyter_server config enabling promoter's server extension")
        if "promoter/templates/service/app/main.py.j2" not in names:
            found.append("no service templates (promoter/templates)")
    return found


def main(argv: list[str]) -> int:
    """Check each wheel named in ``argv``; exit 1 naming what is missing."""
    status = 0
    for name in argv:
        for problem in problems(Path(name)):
            print(f"{name}: {problem}", file=sys.stderr)
            status = 1
        if status == 0:
            print(f"{name}: complete (JupyterLab extension, server config, templates)")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
