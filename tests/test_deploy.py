"""The deploy files of a generated service: the Dockerfile and the k8s manifests (``--k8s``).

There is no Docker daemon or cluster here, so: the manifests go through the real validators
(kubernetes-validate for the API schemas, checkov for policy), and the Dockerfile's steps are
replayed on the build context that docker-py makes from the service's ``.dockerignore``, with the
service then started the way the image's CMD starts it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from docker.utils.build import match_tag, tar
from dockerfile_parse import DockerfileParser

from promoter.building.environment import service_environment
from tests.helpers import EXAMPLES, free_port, golden, run_cli, wait_ready, write_notebook

pytestmark = pytest.mark.slow

KINDS = {
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
# k8s/workers/: the job workers (SERVICE_JOBS_URL=redis://...) and their KEDA ScaledObject.
WORKER_KINDS = {"Deployment", "ScaledObject", "NetworkPolicy"}
# Failed checkov checks each manifest skips on purpose; the reasons are comments beside them.
JUSTIFIED = {"CKV_K8S_21", "CKV_K8S_43", "CKV_K8S_35"}
# A label value, as the Kubernetes API server checks it (the schemas do not).
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# Pod Security "restricted": the volume types it admits.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris example converted with the real CLI, manifests included."""
    out = tmp_path_factory.mktemp("deploy") / "iris"
    result = run_cli("convert", EXAMPLES / "iris_classifier.ipynb", "-o", out, "--k8s")
    assert result.returncode == 0, result.output
    return out


@pytest.fixture(scope="module")
def manifests(service: Path) -> dict[str, dict[str, Any]]:
    """Each manifest by kind."""
    documents = [yaml.safe_load(p.read_text()) for p in sorted((service / "k8s").glob("*.yaml"))]
    by_kind = {doc["kind"]: doc for doc in documents}
    assert len(by_kind) == len(documents)
    return by_kind


def test_manifests_pass_kubernetes_validate_strict(service: Path) -> None:
    files = sorted((service / "k8s").glob("*.yaml"))
    result = subprocess.run(
        [_tool("kubernetes-validate", Path(sys.executable).parent), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(files) == len(KINDS)


def test_manifests_pass_checkov(service: Path) -> None:
    """Zero failed policy checks; each skipped one is justified in a comment beside its skip."""
    report = _checkov(service, "-d", "k8s", "--framework", "kubernetes")
    summary = report["summary"]
    # Each kind is scanned, plus the Pod that checkov's graph checks derive from each Deployment
    # (the service's and the job workers' in k8s/workers/).
    assert summary["resource_count"] == len(KINDS) + 1 + len(WORKER_KINDS) + 1
    assert summary["passed"] > 50
    for check in report["results"]["skipped_checks"]:
        assert check["check_id"] in JUSTIFIED, check["check_id"]
        text = (service / check["file_path"].lstrip("/")).read_text()
        assert re.search(rf"^ *#.*\b{check['check_id']}\b", text, re.MULTILINE), "no reason given"
        assert re.search(rf"checkov\.io/skip\d*: {check['check_id']}=", text)


def test_dockerfile_passes_checkov(service: Path) -> None:
    report = _checkov(service, "-f", "Dockerfile", "--framework", "dockerfile")
    assert report["summary"]["passed"] > 20
    assert report["results"]["skipped_checks"] == []


def test_pod_security_restricted(manifests: dict[str, dict[str, Any]]) -> None:
    _assert_restricted(manifests["Deployment"]["spec"]["template"]["spec"])


def _assert_restricted(pod: dict[str, Any]) -> None:
    """The controls of the Pod Security Standards' "restricted" profile, one by one."""
    pod_context = pod["securityContext"]
    assert not any(pod.get(field) for field in ("hostNetwork", "hostPID", "hostIPC"))
    assert pod_context.get("sysctls", []) == []
    assert {key for volume in pod["volumes"] for key in volume} - {"name"} <= RESTRICTED_VOLUMES
    for container in pod["containers"] + pod.get("initContainers", []):
        context = {**pod_context, **container["securityContext"]}
        assert context["runAsNonRoot"] is True
        assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
        assert isinstance(context["runAsGroup"], int) and context["runAsGroup"] > 0
        assert context["allowPrivilegeEscalation"] is False
        assert context.get("privileged", False) is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert context["seccompProfile"]["type"] in {"RuntimeDefault", "Localhost"}
        assert context.get("procMount", "Default") == "Default"
        assert context.get("appArmorProfile", {}).get("type") != "Unconfined"
        assert all(port.get("hostPort", 0) == 0 for port in container.get("ports", []))
        # Beyond "restricted": a read-only root filesystem, /tmp the one writable path.
        assert context["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts == {"/tmp": "tmp"}
        volume = next(v for v in pod["volumes"] if v["name"] == "tmp")
        assert "emptyDir" in volume
    assert pod["automountServiceAccountToken"] is False


def test_deployment_runs_like_production(
    service: Path, manifests: dict[str, dict[str, Any]]
) -> None:
    """Probes, resources, a tagged image, and a shutdown that finishes inside the grace period."""
    deployment = manifests["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    name, tag = container["image"].rsplit(":", 1)
    assert name == deployment["metadata"]["name"] and tag not in {"", "latest"}
    assert container["imagePullPolicy"] in {"Always", "IfNotPresent"}
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == 8000
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness")}
    probes["liveness"] = container["livenessProbe"]["httpGet"]
    assert {kind: p["path"] for kind, p in probes.items()} == {
        "startup": "/ready",
        "readiness": "/ready",
        "liveness": "/health",
    }
    assert {p["port"] for p in probes.values()} == {"http"}
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}
    # preStop, then uvicorn's graceful shutdown (the image's CMD), inside the grace period.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    command = _instruction(DockerfileParser(str(service / "Dockerfile")), "CMD")
    graceful = json.loads(command)
    shutdown = int(graceful[graceful.index("--timeout-graceful-shutdown") + 1])
    assert int(pre_stop[1]) + shutdown < pod["terminationGracePeriodSeconds"]
    # ... and the drain outlasts every route's timeout: no request is cut within its timeout.
    wiring = (service / "app" / "main.py").read_text()
    timeouts = re.findall(r"\.runner\([^)]*?timeout=([0-9.]+)", wiring)  # routes, not jobs
    assert timeouts and shutdown > max(map(float, timeouts))
    # A wedge shows on /ready and /health within 2x the route timeout: the pod leaves the
    # Service at the first failed readiness probe, and is restarted well within one more timeout.
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness.get("failureThreshold", 3) == 1
    assert liveness["periodSeconds"] * liveness["failureThreshold"] < min(map(float, timeouts))


def test_manifests_agree_on_names_and_labels(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == KINDS
    assert manifests["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert manifests["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    deployment = manifests["Deployment"]
    name = deployment["metadata"]["name"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == name
    for doc in manifests.values():
        assert doc["metadata"]["name"] == name
        assert doc["metadata"]["labels"] == pod_labels
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        manifests["Service"]["spec"]["selector"],
        manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        manifests["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        # A selector must not carry the version: a Deployment's selector cannot change later.
        assert selector == {"app.kubernetes.io/name": name}
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"]) == ("Deployment", name)
    # The HPA owns the replica count; the PDB leaves a pod serving through a drain.
    assert "replicas" not in deployment["spec"]
    assert manifests["PodDisruptionBudget"]["spec"]["maxUnavailable"] < hpa["minReplicas"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in manifests["Service"]["spec"]["ports"]} <= port_names


def test_autoscaler_scales_on_requests_held_then_cpu(manifests: dict[str, dict[str, Any]]) -> None:
    """An I/O- or sleep-bound notebook sheds 503s at near-zero CPU: the first signal is the
    requests each pod holds (slots busy + waiting, from its /metrics), CPU the second."""
    requests, cpu = manifests["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert requests["type"] == "Pods"
    assert requests["pods"]["metric"]["name"] == "notebook_requests_held"
    assert requests["pods"]["target"]["type"] == "AverageValue"
    assert cpu["resource"]["name"] == "cpu"
    pod = manifests["Deployment"]["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


@pytest.fixture(scope="module")
def workers(service: Path) -> dict[str, dict[str, Any]]:
    """The job workers' manifests by kind."""
    files = sorted((service / "k8s" / "workers").glob("*.yaml"))
    by_kind = {doc["kind"]: doc for doc in (yaml.safe_load(p.read_text()) for p in files)}
    assert set(by_kind) == WORKER_KINDS
    return by_kind


def test_worker_manifests_pass_kubernetes_validate_strict(service: Path) -> None:
    """The Deployment and NetworkPolicy against the API schemas.

    kubernetes-validate has no schema for KEDA's CustomResourceDefinitions: it warns and
    skips the ScaledObject, whose fields ``test_workers_scale_on_their_queue`` checks.
    """
    files = sorted((service / "k8s" / "workers").glob("*.yaml"))
    result = subprocess.run(
        [_tool("kubernetes-validate", Path(sys.executable).parent), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(files) - 1
    assert "kind ScaledObject with api version keda.sh/v1alpha1" in result.stdout


def test_worker_pods_are_restricted_and_run_the_worker(
    workers: dict[str, dict[str, Any]],
) -> None:
    pod = workers["Deployment"]["spec"]["template"]["spec"]
    _assert_restricted(pod)
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "app.worker"]
    assert "ports" not in container
    for probe in ("startup", "readiness", "liveness"):
        assert container[f"{probe}Probe"]["exec"]["command"][-1] == "--ping"
    env = {e["name"]: e for e in container["env"]}
    assert env["SERVICE_JOBS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
    # A stopping worker may finish a job that runs for the whole job timeout (1 h default).
    assert pod["terminationGracePeriodSeconds"] >= 3600
    assert "replicas" not in workers["Deployment"]["spec"]  # the ScaledObject owns the count


def test_workers_scale_on_their_queue(service: Path, workers: dict[str, dict[str, Any]]) -> None:
    """The KEDA ScaledObject (keda.sh/v1alpha1), field by field as its CRD declares them."""
    scaled = workers["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    deployment = workers["Deployment"]
    name = deployment["metadata"]["name"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    for field in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        assert isinstance(spec[field], int)
    assert 0 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values())  # map[string]string
    # The list is the Celery queue the service submits to (app/jobs: Jobs.queue).
    service_name = yaml.safe_load((service / "k8s" / "deployment.yaml").read_text())["metadata"]
    assert metadata["listName"] == f"{service_name['name']}-jobs"
    assert 'return f"{self.name}-jobs"' in (service / "app" / "jobs" / "api.py").read_text()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert metadata["addressFromEnv"] in {e["name"] for e in container["env"]}
    assert int(metadata["listLength"]) >= 1
    for doc in workers.values():
        assert doc["metadata"]["name"] == name
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == name


@pytest.mark.parametrize("version", ["2", "2.0+build.5"])
def test_any_notebook_version_makes_valid_manifests(tmp_path: Path, version: str) -> None:
    """A version YAML reads as a number, or with a "+" (not allowed in labels or image tags)."""
    notebook = write_notebook(
        tmp_path / "scorer.ipynb",
        ("code", "x = 1  # A number", ["parameters"]),
        ("code", "{'double': 2 * x}", ["response"]),
        metadata={"version": version},
    )
    out = tmp_path / "svc"
    result = run_cli("convert", notebook, "-o", out, "--k8s")
    assert result.returncode == 0, result.output
    validate = _tool("kubernetes-validate", Path(sys.executable).parent)
    files = sorted(map(str, (out / "k8s").glob("*.yaml")))
    checked = subprocess.run([validate, "--strict", *files], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    deployment = yaml.safe_load((out / "k8s" / "deployment.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert LABEL_VALUE.fullmatch(labels["app.kubernetes.io/version"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert match_tag(container["image"]), container["image"]
    build = DockerfileParser(str(out / "Dockerfile")).structure[0]["value"]
    assert match_tag(build.split(" -t ")[1].split()[0])


def test_dockerfile_installs_dependencies_before_the_code(service: Path) -> None:
    """Only pyproject.toml is copied before the dependency install, so a code edit keeps it."""
    steps = _steps(DockerfileParser(str(service / "Dockerfile")))
    kinds = [kind for kind, _ in steps]
    install = next(i for i, (kind, value) in enumerate(steps) if kind == "RUN" and "pip" in value)
    copies = [(i, value.split()) for i, (kind, value) in enumerate(steps) if kind == "COPY"]
    # The lock of exact versions the service was proven with, as convert writes by default.
    assert [sources for i, (*sources, _) in copies if i < install] == [["requirements.lock"]]
    assert [(sources, dest) for i, (*sources, dest) in copies if i > install] == [(["."], ".")]
    assert kinds.index("USER") > install
    user = dict(steps)["USER"]
    assert re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user), user
    assert dict(steps)["EXPOSE"] == "8000"
    assert "HEALTHCHECK" in kinds
    assert json.loads(dict(steps)["CMD"])[0] == "uvicorn"
    envs = DockerfileParser(str(service / "Dockerfile")).envs
    assert envs["PYTHONDONTWRITEBYTECODE"] == "1" and envs["PIP_NO_CACHE_DIR"] == "1"


def test_readme_explains_the_deploy(service: Path) -> None:
    readme = (service / "README.md").read_text()
    deploy = readme[readme.index("\n## Deploy\n") :]
    assert "--read-only --tmpfs /tmp" in deploy
    assert "kubectl apply -n NAMESPACE -f k8s/" in deploy
    for check in JUSTIFIED:
        assert check in deploy


def test_build_context_keeps_code_and_data_only(service: Path, tmp_path: Path) -> None:
    data = service / "data" / "iris.csv"
    data.parent.mkdir()
    data.write_text("sepal_length\n5.1\n")
    (service / ".env").write_text("API_KEYS=secret\n")
    try:
        files = set(_context(service, tmp_path / "context").rglob("*"))
    finally:
        data.unlink()
        data.parent.rmdir()
        (service / ".env").unlink()
    names = {p.relative_to(tmp_path / "context").as_posix() for p in files}
    assert {"app/main.py", "app/pipeline.py", "pyproject.toml", "data/iris.csv"} <= names
    assert not {"tests", "k8s", ".env"} & names
    assert not any("__pycache__" in name for name in names)


def test_image_layout_serves_from_a_read_only_tree(service: Path, tmp_path: Path) -> None:
    """Replay the Dockerfile: dependency step, ``COPY . .``, then the CMD, as the image runs it.

    The container's /tmp (the only writable path, an emptyDir in k8s) is a folder of this test.
    The tree is made read-only and compared before and after: serving writes nothing into it.
    """
    dockerfile = DockerfileParser(str(service / "Dockerfile"))
    container_tmp = tmp_path / "container-tmp"
    container_tmp.mkdir()
    # The environment the service was proven in (built from its pins, cached by them): the
    # image installs requirements.lock, which holds exactly that environment.
    proven = service_environment(service).python
    # The image's environment only (this machine's PYTHON*/PIP_* variables would hide a missing
    # ENV line), with the proven environment's python and uvicorn first on PATH.
    env = {
        **{key: _in_container(value, container_tmp) for key, value in dockerfile.envs.items()},
        "PATH": f"{proven.parent}{os.pathsep}{os.environ['PATH']}",
    }
    workdir = tmp_path / "srv"
    workdir.mkdir()
    steps = _steps(dockerfile)
    install = next(value for kind, value in steps if kind == "RUN" and "pip" in value)
    shutil.copy(service / "requirements.lock", workdir)
    # The dependency step as written, with pip (promoter's: the proven environment has none)
    # in dry-run against the proven environment, asking no index: every line is there already.
    pip = f"{shlex.quote(sys.executable)} -m pip --python {shlex.quote(str(proven))}"
    result = subprocess.run(
        [
            "sh",
            "-c",
            _in_container(install, container_tmp).replace("pip install", pip + " install", 1),
        ],
        cwd=workdir,
        env={**env, "PIP_DRY_RUN": "1", "PIP_NO_INDEX": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    satisfied = re.findall(r"^Requirement already satisfied: (\S+) in ", result.stdout, re.M)
    locked = re.findall(r"^([A-Za-z0-9_.-]+)==", (service / "requirements.lock").read_text(), re.M)
    assert {_canonical(n.split("==")[0]) for n in satisfied} == {_canonical(n) for n in locked}
    assert {_canonical(p.split("==")[0]) for p in _pins(service / "pyproject.toml")} <= {
        _canonical(n) for n in locked
    }
    _context(service, workdir)
    _read_only(workdir)
    before = _snapshot(workdir)

    imported = subprocess.run(
        [str(proven), "-c", "import app.main"], cwd=workdir, env=env, capture_output=True
    )
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    command = _local(json.loads(_instruction(dockerfile, "CMD")), port)
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        expected = golden(service)
        answer = httpx.post(url + "/iris_classifier", json=expected["request"], timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["species"] == expected["response"]["species"]
        healthcheck = _instruction(dockerfile, "HEALTHCHECK").split(" CMD ", 1)[1]
        probe = [part.replace(":8000/", f":{port}/") for part in json.loads(healthcheck)]
        assert subprocess.run(probe, cwd=workdir, env=env).returncode == 0
    finally:
        _stop(process)
    assert _snapshot(workdir) == before


def _tool(name: str, folder: Path) -> str:
    """A validator installed by ``make install``; a missing one fails (CI must run it)."""
    path = folder / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make install`")
    return found


def _checkov(service: Path, *args: str) -> dict[str, Any]:
    """Run checkov in the service folder; its JSON report, with no failed check."""
    checkov = _tool("checkov", Path(sys.prefix) / "checkov" / "bin")
    # --skip-download: checkov would otherwise fetch guideline links from its vendor's API.
    result = subprocess.run(
        [checkov, *args, "--skip-download", "-o", "json"],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert result.returncode == 0, result.stderr
    assert report["summary"]["parsing_errors"] == 0
    return report


def _steps(dockerfile: DockerfileParser) -> list[tuple[str, str]]:
    """The Dockerfile's instructions in order (comments left out), continuation lines joined."""
    return [
        (step["instruction"], step["value"])
        for step in dockerfile.structure
        if step["instruction"] != "COMMENT"
    ]


def _instruction(dockerfile: DockerfileParser, kind: str) -> str:
    (value,) = [value for k, value in _steps(dockerfile) if k == kind]
    return value


def _in_container(text: str, container_tmp: Path) -> str:
    """A path or command as the container sees it: its /tmp is ``container_tmp`` here."""
    return re.sub(r"(?<![\w/])/tmp(?=/|\b)", str(container_tmp), text)


def _context(service: Path, into: Path) -> Path:
    """``COPY . .``: what docker-py sends as the build context, given the .dockerignore."""
    lines = (service / ".dockerignore").read_text().splitlines()
    # The same filter docker-py's APIClient.build applies to .dockerignore lines.
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    archive = tar(str(service), exclude=patterns, fileobj=io.BytesIO())
    with tarfile.open(fileobj=archive) as context:
        context.extractall(into, filter="data")
    for name in ("Dockerfile", ".dockerignore"):
        # Docker always sends these two; listed in .dockerignore, COPY leaves them out.
        (into / name).unlink(missing_ok=True)
    return into


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(pyproject: Path) -> list[str]:
    import tomllib

    dependencies: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return sorted(dependencies, key=str.lower)


def _read_only(root: Path) -> None:
    """chmod a-w (as root it does not stop writes: the snapshot comparison does)."""
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        path.relative_to(root).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
    }


def _local(command: list[str], port: int) -> list[str]:
    """The image's CMD, bound to 127.0.0.1 and a free port (tests use only the loopback)."""
    local = list(command)
    local[local.index("--host") + 1] = "127.0.0.1"
    local[local.index("--port") + 1] = str(port)
    return local


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # uvicorn's supervisor did not stop its workers: end the whole group it leads.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
