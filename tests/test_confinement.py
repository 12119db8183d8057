"""Data files come only from inside the notebook's folder: links out are refused, secrets stay.

In the image of a hostile review (issue 23): a data file that is a link to a file elsewhere (a
key, a password file) must not be read into the service and its image, nor a glob through a
linked folder, nor a hidden ``.env`` that a ``conf/*`` glob happens to cover.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pathspec
import pytest
from docker.utils.build import tar

import promoter
from promoter import ContractError
from promoter.analysis.files import Observed, data_files
from promoter.building.build import build_service, service_options
from promoter.reading.notebook import read_notebook
from tests.helpers import run_cli, write_notebook

SECRET = "postgres://admin:hunter2@db/prod\n"


def _secret(tmp_path: Path) -> Path:
    """A file outside the notebook's folder that must never travel."""
    outside = tmp_path / "home" / ".pgpass"
    outside.parent.mkdir(parents=True)
    outside.write_text(SECRET)
    return outside


def _everything_in(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_data_file_linked_to_a_file_outside_is_refused_naming_cell_and_line(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "lookup.csv").symlink_to(_secret(tmp_path))
    notebook = write_notebook(
        project / "lookup.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "import csv\n\nrows = list(csv.reader(open('data/lookup.csv')))", []),
        ("code", "{'rows': len(rows) * n}", ["response"]),
    )

    result = run_cli("convert", notebook, "-o", tmp_path / "out")

    assert result.returncode in (1, 2), result.output
    assert "data/lookup.csv is a link to" in result.stderr
    assert "outside the notebook's project root" in result.stderr
    assert "cell 2" in result.stderr and "line 3" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_read_through_a_linked_folder_is_refused(tmp_path: Path) -> None:
    shared = _secret(tmp_path).parent
    (shared / "passwords.csv").write_text(SECRET)
    project = tmp_path / "project"
    project.mkdir()
    (project / "shared").symlink_to(shared, target_is_directory=True)
    notebook = write_notebook(
        project / "nb.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "text = open('shared/passwords.csv').read()", []),
        ("code", "{'length': len(text) * n}", ["response"]),
    )

    with pytest.raises(ContractError, match=r"shared/passwords\.csv is a link to") as error:
        promoter.inspect(notebook)

    assert error.value.location is not None
    assert (error.value.location.cell_number, error.value.location.line) == (2, 1)


@pytest.mark.slow
def test_a_read_that_climbs_out_of_a_linked_folder_is_refused(tmp_path: Path) -> None:
    """``link/../x`` reads the parent of the link's target, not the folder's own ``x``."""
    outside = tmp_path / "elsewhere"
    (outside / "inner").mkdir(parents=True)
    (outside / "x.csv").write_text(SECRET)
    project = tmp_path / "project"
    project.mkdir()
    (project / "x.csv").write_text("harmless\n")
    (project / "link").symlink_to(outside / "inner", target_is_directory=True)
    notebook = write_notebook(
        project / "nb.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "text = open('link/../x.csv').read()", []),
        ("code", "{'length': len(text) * n}", ["response"]),
    )

    with pytest.raises(ContractError, match=r"reads 'link/\.\./x\.csv', which is outside"):
        promoter.inspect(notebook)


def test_a_named_read_of_a_link_out_is_refused_with_its_line(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.parquet").symlink_to(_secret(tmp_path))
    notebook = read_notebook(
        write_notebook(
            project / "nb.ipynb",
            ("code", "import pandas as pd", []),
            ("code", "n = 1", ["parameters"]),
            ("code", "k = 2\ntable = pd.read_parquet('data/x.parquet')", []),
            ("code", "{'rows': len(table) * n}", ["response"]),
        )
    )

    with pytest.raises(ContractError, match=r"data/x\.parquet is a link to") as error:
        data_files(notebook, Observed())

    assert error.value.location is not None
    assert (error.value.location.cell_number, error.value.location.line) == (3, 2)


def test_a_link_inside_the_folder_travels_under_its_own_name(tmp_path: Path) -> None:
    (tmp_path / "v2.csv").write_text("a\n1\n")
    (tmp_path / "latest.csv").symlink_to(tmp_path / "v2.csv")
    notebook = read_notebook(
        write_notebook(
            tmp_path / "nb.ipynb",
            ("code", "import pandas as pd", []),
            ("code", "n = 1", ["parameters"]),
            ("code", "table = pd.read_csv('latest.csv')", []),
            ("code", "{'rows': len(table) * n}", ["response"]),
        )
    )

    files, _, _ = data_files(notebook, Observed())

    assert [(f.path, f.source) for f in files] == [("latest.csv", tmp_path / "v2.csv")]


def _globbing(folder: Path, *globs: str) -> Path:
    return write_notebook(
        folder / "nb.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "{'n': n}", ["response"]),
        metadata={"files": list(globs)},
    )


def test_a_glob_through_a_linked_folder_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "data").symlink_to(_secret(tmp_path).parent, target_is_directory=True)
    notebook = read_notebook(_globbing(project, "data/.*"))

    with pytest.raises(ContractError, match=r"data/\.pgpass \(from the files glob"):
        data_files(notebook, Observed())


def test_a_glob_hit_that_is_a_link_out_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "a.joblib").write_bytes(b"model")
    (project / "models" / "b.joblib").symlink_to(_secret(tmp_path))
    notebook = read_notebook(_globbing(project, "models/*.joblib"))

    with pytest.raises(ContractError, match=r"models/b\.joblib .* is a link to"):
        data_files(notebook, Observed())


def test_a_double_star_glob_neither_follows_linked_folders_nor_loops(tmp_path: Path) -> None:
    outside = _secret(tmp_path).parent
    (outside / "passwords.csv").write_text(SECRET)
    project = tmp_path / "project"
    (project / "data" / "deep").mkdir(parents=True)
    (project / "data" / "deep" / "x.csv").write_text("a\n")
    (project / "data" / "again").symlink_to(project, target_is_directory=True)
    (project / "data" / "also").symlink_to(project, target_is_directory=True)
    (project / "home").symlink_to(outside, target_is_directory=True)
    notebook = read_notebook(_globbing(project, "**/*.csv", "**/*"))

    files, _, _ = data_files(notebook, Observed())

    assert [f.path for f in files] == ["data/deep/x.csv"]


def test_hidden_files_match_only_a_glob_that_names_the_dot(tmp_path: Path) -> None:
    (tmp_path / "conf" / ".secrets").mkdir(parents=True)
    (tmp_path / "conf" / "app.yml").write_text("threshold: 3\n")
    (tmp_path / "conf" / ".env").write_text("API_KEY=hunter2\n")
    (tmp_path / "conf" / ".secrets" / "x.yml").write_text("k: v\n")

    star = data_files(read_notebook(_globbing(tmp_path, "conf/*", "conf/**/*.yml")), Observed())
    dot = data_files(read_notebook(_globbing(tmp_path, "conf/.*")), Observed())

    assert [f.path for f in star[0]] == ["conf/app.yml"]
    assert [f.path for f in dot[0]] == ["conf/.env"]


@pytest.mark.slow
def test_a_data_file_swapped_for_a_link_before_the_copy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "project" / "data").mkdir(parents=True)
    data = tmp_path / "project" / "data" / "x.csv"
    data.write_text("a\n1\n2\n")
    notebook = write_notebook(
        tmp_path / "project" / "nb.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "rows = open('data/x.csv').read().splitlines()", []),
        ("code", "{'rows': len(rows) * n}", ["response"]),
    )
    inspection = promoter.inspect(notebook)
    assert [f.path for f in inspection.files] == ["data/x.csv"]
    data.unlink()
    data.symlink_to(_secret(tmp_path))
    out = tmp_path / "out"

    with pytest.raises(ContractError, match="is a link to"):
        options = service_options([inspection.notebook], out, k8s=False, name=None)
        build_service([inspection.plan()], options, out)

    assert not out.exists()


@pytest.mark.slow
def test_a_data_file_the_image_would_not_get_is_refused(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "client.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "pem = open('certs/client.pem').read()", []),
        ("code", "{'lines': len(pem.splitlines()) * n}", ["response"]),
    )

    result = run_cli("convert", notebook, "-o", tmp_path / "out")

    assert result.returncode in (1, 2), result.output
    assert "certs/client.pem would not reach the image" in result.stderr
    assert "Traceback" not in result.output


SECRETS = [
    ".env",
    "conf/.env",
    "conf/.env.production",
    "deploy/keys/server.pem",
    "deploy/tls.key",
    "home/.ssh/id_rsa",
    "home/.ssh/id_ed25519.pub",
    "id_rsa",
    ".aws/credentials",
    "home/.aws/config",
    "x/.git/config",
    ".git/HEAD",
    "gcp/service-account-prod.json",
    "home/.netrc",
    "home/.docker/config.json",
    "infra/terraform.tfstate",
    "app/__pycache__/main.cpython-311.pyc",
]


@pytest.mark.slow
def test_the_image_gets_no_secret_at_any_depth(tmp_path: Path) -> None:
    """The .dockerignore, replayed as docker-py builds the context, leaves every secret out."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.csv").write_text("a\n1\n")
    notebook = write_notebook(
        project / "nb.ipynb",
        ("code", "n = 1", ["parameters"]),
        ("code", "rows = open('data/x.csv').read().splitlines()", []),
        ("code", "{'rows': len(rows) * n}", ["response"]),
    )
    out = tmp_path / "out"
    promoter.convert([notebook], out)
    for rel in SECRETS:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(SECRET)

    lines = (out / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    with tarfile.open(fileobj=tar(str(out), exclude=patterns, fileobj=io.BytesIO())) as context:
        names = set(context.getnames())

    assert not [rel for rel in SECRETS if rel in names]
    assert {"data/x.csv", "app/main.py", "pyproject.toml"} <= names
    assert not pathspec.GitIgnoreSpec.from_lines(lines).match_file("data/x.csv")
