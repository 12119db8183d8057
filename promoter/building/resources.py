"""Files promoter ships besides its code: the service templates and the shared JSON converter.

They load the same way from a source checkout (``templates/`` at the repository root) and from
an installed wheel (``promoter/templates``, force-included at build time).
"""

from __future__ import annotations

import inspect
import types
from pathlib import Path

__all__ = [
    "JSONABLE_PACKAGE",
    "jsonable_loader_code",
    "jsonable_sources",
    "load_package",
    "shipped_sources",
    "template_dir",
]

#: The packages and modules of ``templates/service/app/`` every service carries verbatim.
_SHIPPED = ("jobs", "jsonable", "runtime")
_SHIPPED_MODULES = ("worker.py",)

#: The name the kernel capture imports the JSON converter under (clear of the notebook's own).
JSONABLE_PACKAGE = "_promoter_jsonable"


def template_dir() -> Path:
    """The templates folder: inside the installed wheel, or at the root of a source checkout."""
    package = Path(__file__).parents[1]
    packaged = package / "templates"
    if packaged.is_dir():
        return packaged
    return package.parent / "templates"


def shipped_sources() -> dict[str, str]:
    """Every module of ``app/jobs/``, ``app/jsonable/``, ``app/runtime/`` and ``app/worker.py``.

    Keyed by its path in the service.
    """
    app = template_dir() / "service" / "app"
    sources = {
        f"app/{package}/{path.name}": path.read_text(encoding="utf-8")
        for package in _SHIPPED
        for path in sorted((app / package).glob("*.py"))
    }
    sources.update(
        {f"app/{name}": (app / name).read_text(encoding="utf-8") for name in _SHIPPED_MODULES}
    )
    return sources


def jsonable_sources() -> dict[str, str]:
    """The JSON converter shared by the kernel capture and the service, module name -> source.

    ``__init__`` is the package; the others are its modules (they import one another
    relatively, so the package loads under any name).
    """
    folder = template_dir() / "service" / "app" / "jsonable"
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.py"))}


def jsonable_loader_code() -> str:
    """Python code that defines :func:`load_package` in a namespace of its own (the kernel's)."""
    return "from __future__ import annotations\n\n" + inspect.getsource(load_package)


def load_package(name: str, sources: dict[str, str]) -> types.ModuleType:
    """Import the package ``name`` whose modules are ``sources`` (module name -> source).

    No file needs to be importable: a finder answers for ``name`` and its modules from the
    sources, every module is imported, and the finder leaves ``sys.meta_path`` again. Runs in
    the kernel from its own source (``jsonable_loader_code``), so it imports what it uses.
    """
    import importlib
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import sys

    class Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(
            self, fullname: str, path: object = None, target: object = None
        ) -> importlib.machinery.ModuleSpec | None:
            module = "__init__" if fullname == name else fullname.removeprefix(name + ".")
            if module not in sources or (module == fullname):
                return None
            return importlib.util.spec_from_loader(fullname, self, is_package=module == "__init__")

        def exec_module(self, module: types.ModuleType) -> None:
            key = "__init__" if module.__name__ == name else module.__name__.rpartition(".")[2]
            code = compile(sources[key], f"<{name}/{key}.py>", "exec")
            exec(code, module.__dict__)

    finder = Sources()
    sys.meta_path.insert(0, finder)
    try:
        package = importlib.import_module(name)
        for module in sources:
            if module != "__init__":
                importlib.import_module(f"{name}.{module}")
    finally:
        sys.meta_path.remove(finder)
    return package
