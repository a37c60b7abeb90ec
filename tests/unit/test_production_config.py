"""The production-shaped stack files, checked with the tools that read them.

docker-compose.yaml is resolved by a compose tool (Debian's `docker-compose`, or Docker's compose
plugin), with a filled-in copy of .env.example and with each secret missing in turn; its services,
users, volumes and secrets are checked on the parsed file. The Helm values are validated against
the official chart's values schema (the vendored extract in tests/fixtures/) and their volumes
against the Kubernetes OpenAPI schema; the Kubernetes manifests likewise, the serving ones
re-rendered from `airloop.deploy.kubernetes` and compared with the committed copy.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from airloop.deploy.kubernetes import KUBERNETES_VERSION, validate_manifests
from airloop.settings import PROJECT_ROOT
from tests.conftest import unavailable

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
AIRFLOW_DOCKERFILE = PROJECT_ROOT / "include" / "docker" / "airflow.Dockerfile"
LOCKFILE = PROJECT_ROOT / "requirements.lock"
K8S_DIR = PROJECT_ROOT / "deploy" / "kubernetes"
HELM_VALUES = K8S_DIR / "values.yaml"
SERVICES_MANIFESTS = K8S_DIR / "airloop-services.yaml"
CHART_SCHEMA = PROJECT_ROOT / "tests" / "fixtures" / "airflow-chart-values.schema.extract.json"

STATE_PATH = "/opt/airflow/airloop"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
#: What the DAGs and the loop need running: Airflow's components, its database and broker, the
#: registry, the monitoring UI and the model endpoint.
NEEDED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "mlflow", "evidently-ui", "serving"}
#: One-shot or on-demand services: no healthcheck expected.
ONE_SHOT_SERVICES = {"airflow-init", "airloop-cli"}
#: Names of settings that hold secrets.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|_KEY|TOKEN)$", re.IGNORECASE)
#: `${NAME}`, `${NAME:-default}`, `${NAME:?error}`; `$${...}` is an escaped dollar, not a variable.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
#: Credentials in a URL: scheme://user:password@host.
URL_PASSWORD = re.compile(r"://[^:/@\s]*:(?P<password>[^@\s]+)@")


# -- helpers ---------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    """The compose file as YAML reads it (anchors and merge keys resolved, variables not)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """.env.example as (set: NAME=value lines, commented: `# NAME=value` lines)."""
    assigned: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            assigned[match[1]] = match[2]
        elif match := re.fullmatch(r"#\s?([A-Z][A-Z0-9_]*)=(.*)", line):
            commented[match[1]] = match[2]
    return assigned, commented


def interpolations(text: str) -> list[re.Match[str]]:
    return list(INTERPOLATION.finditer(text))


def compose_variables() -> list[re.Match[str]]:
    """Every variable the compose file's values read (its comments are not read by compose)."""
    return interpolations(json.dumps(load_compose()))


def required_variables() -> set[str]:
    """Variables the compose file requires (`${NAME:?...}`)."""
    return {m["name"] for m in compose_variables() if m["op"] in (":?", "?")}


def literal_secrets(compose: dict[str, Any]) -> list[str]:
    """Every secret-named setting, or password in a URL, whose value is not a required variable."""
    found = []
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            text = str(value)
            if SECRET_NAME.search(key) and not re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", text):
                found.append(f"{name}: {key}")
            for url in URL_PASSWORD.finditer(text):
                if not re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", url["password"]):
                    found.append(f"{name}: {key} (password in URL)")
    return found


def filled_env(path: Path, *, leave_out: str | None = None) -> Path:
    """.env.example with every required value generated (as the README says), one left out if asked."""
    assigned, _ = env_example()
    lines = []
    for name in assigned:
        if name == leave_out:
            continue
        if name == "AIRFLOW_FERNET_KEY":
            value = base64.urlsafe_b64encode(os.urandom(32)).decode()
        else:
            value = secrets.token_hex(24)
        lines.append(f"{name}={value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_tool() -> list[str]:
    """Docker's compose plugin, else Debian's docker-compose; skip (fail in CI) when there is neither."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    unavailable("no compose tool: install Debian's docker-compose (apt-get install docker-compose) or Docker's plugin")


def run_compose(env_file: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The compose tool on the compose file with `env_file`, in an environment that sets nothing else."""
    return subprocess.run(
        [*compose_tool(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load_helm_values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load_module(name: str, path: Path) -> Any:
    """A module from a file outside the installed package (a script, or an Airflow plugin)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_serving_module() -> Any:
    return load_module("render_serving", K8S_DIR / "render_serving.py")


# -- docker-compose.yaml, through a compose tool -----------------------------------------------------


@pytest.fixture(scope="module")
def resolved_compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`compose config`: the file validated and resolved with every required value given."""
    tmp = tmp_path_factory.mktemp("compose")
    done = run_compose(filled_env(tmp / "env"), "config", home=tmp)
    assert done.returncode == 0, f"compose config failed:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def test_compose_file_validates_and_resolves(resolved_compose):
    services = resolved_compose["services"]
    assert set(services) >= NEEDED_SERVICES
    # Every default resolved and every required value filled: no variable is left in the result.
    assert not interpolations(json.dumps(resolved_compose))
    worker_env = services["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker_env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:")
    assert services["airflow-apiserver"]["ports"], "the API server publishes its port"


@pytest.mark.parametrize("missing", sorted(required_variables()))
def test_a_missing_secret_stops_compose_with_its_name(missing, tmp_path):
    done = run_compose(filled_env(tmp_path / "env", leave_out=missing), "config", "--quiet", home=tmp_path)
    assert done.returncode != 0, f"compose accepted the file without {missing}"
    assert f"set {missing} in .env" in done.stderr, done.stderr


# -- docker-compose.yaml, as written -------------------------------------------------------------------


def test_every_service_the_loop_needs_is_defined():
    assert set(load_compose()["services"]) >= NEEDED_SERVICES


def test_airflow_runs_from_the_project_image_with_celery_postgres_and_redis():
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "include/docker/airflow.Dockerfile", name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"], name
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
    for name in ("mlflow", "evidently-ui", "serving"):
        assert services[name]["image"] == services["airflow-worker"]["image"], name


def test_no_anonymous_access_to_airflow():
    env = load_compose()["services"]["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRLOOP_ADMIN_PASSWORD"].startswith("${AIRLOOP_ADMIN_PASSWORD:?")


def test_the_loop_is_live_from_the_start_in_compose_and_helm():
    # Else monitoring never runs, the retraining sensor never waits, and a triggered deploy sits queued.
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False", name
    assert load_helm_values()["config"]["core"]["dags_are_paused_at_creation"] == "False"


def test_task_processes_start_warm_in_compose_and_helm():
    # The same settings as the embedded Celery stack: each worker imports airloop.preload
    # before it forks its pool.
    from airloop.stack.embedded import WARM_TASKS

    services = load_compose()["services"]
    helm = load_helm_values()["config"]
    for key, value in WARM_TASKS["CeleryExecutor"].items():
        _, section, option = key.lower().split("__")
        for name in AIRFLOW_SERVICES:
            assert services[name]["environment"][key] == value, (name, key)
        assert helm[section][option] == value, key


def test_mlflow_requires_login_with_a_password_from_env():
    mlflow = load_compose()["services"]["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--app-name basic-auth" in command
    assert "--serve-artifacts" in command
    assert "airloop.stack.mlflow_auth write-config" in command
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${AIRLOOP_MLFLOW_ADMIN_PASSWORD:?")
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")


def test_worker_scales_with_compose_scale():
    # A fixed container name or a published host port would make a second replica fail to start.
    worker = load_compose()["services"]["airflow-worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


def test_services_wait_for_what_they_need_and_report_health():
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["serving"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    for name, service in services.items():
        if name not in ONE_SHOT_SERVICES:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_one_state_volume_at_airloop_home_everywhere():
    compose = load_compose()
    assert "airloop-state" in compose["volumes"]
    for name in (*AIRFLOW_SERVICES, "serving", "evidently-ui"):
        assert f"airloop-state:{STATE_PATH}" in compose["services"][name]["volumes"], name
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["environment"]["AIRLOOP_HOME"] == STATE_PATH, name
    serving_env = compose["services"]["serving"]["environment"]
    assert serving_env["AIRLOOP_SERVING_INFERENCE_LOG_DIR"] == f"{STATE_PATH}/inference"
    assert f"--workspace {STATE_PATH}/monitoring/evidently" in " ".join(compose["services"]["evidently-ui"]["command"])


def test_no_secret_has_a_literal_value():
    assert literal_secrets(load_compose()) == []


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        pytest.param("postgres", "POSTGRES_PASSWORD", "airflow", id="literal-password"),
        pytest.param("redis", "REDIS_PASSWORD", "${REDIS_PASSWORD:-changeme}", id="default-instead-of-required"),
        pytest.param(
            "airflow-worker",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgresql+psycopg2://airflow:airflow@postgres/airflow",
            id="password-in-url",
        ),
    ],
)
def test_the_secret_check_catches_literal_secrets(service, key, value):
    compose = copy.deepcopy(load_compose())
    compose["services"][service]["environment"][key] = value
    assert literal_secrets(compose) == [f"{service}: {key}" + (" (password in URL)" if "://" in value else "")]


def test_inline_service_scripts_parse():
    # Compose turns `$$` into `$` before the shell sees the script.
    checked = 0
    for name, service in load_compose()["services"].items():
        command = service.get("command")
        if not isinstance(command, list) or len(command) != 3 or command[1] != "-c":
            continue
        script = command[2].replace("$$", "$")
        if command[0] in ("bash", "sh"):
            done = subprocess.run([command[0], "-n"], input=script, capture_output=True, text=True, check=False)
            assert done.returncode == 0, f"{name}: {done.stderr}"
        else:
            assert command[0] == "python", name
            compile(script, f"<{name} command>", "exec")
        checked += 1
    assert checked >= 5  # api server, init, MLflow, Evidently UI, serving, Redis


def test_every_service_runs_as_a_non_root_user():
    for name, service in load_compose()["services"].items():
        user = service.get("user")
        assert user, f"{name} sets no user and would run as its image's default"
        # Resolve `${AIRFLOW_UID:-50000}` to its default.
        uid = INTERPOLATION.sub(lambda m: m["arg"] if m["op"] == ":-" else m[0], str(user)).split(":")[0]
        assert uid not in {"0", "root"}, f"{name} runs as {user}"


def test_env_example_lists_every_variable_the_compose_file_reads():
    assigned, commented = env_example()
    found = compose_variables()
    required = {m["name"] for m in found if m["op"] in (":?", "?")}
    optional = {m["name"]: m["arg"] for m in found if m["op"] in (":-", "-")}
    # Required values are listed to be filled in, and left empty: no secret is committed.
    assert set(assigned) == required
    assert all(value == "" for value in assigned.values()), "a value is committed in .env.example"
    # Settings with defaults are listed commented out, with the compose file's default.
    assert set(optional) <= set(commented), f"not in .env.example: {sorted(set(optional) - set(commented))}"
    for name, default in optional.items():
        assert commented[name] == default, f"{name}: .env.example says {commented[name]!r}, compose {default!r}"


def test_env_file_is_ignored_by_git():
    done = subprocess.run(["git", "check-ignore", "--quiet", ".env"], cwd=PROJECT_ROOT, check=False)
    assert done.returncode == 0, ".env is not in .gitignore"


def test_postgres_init_script_creates_the_mlflow_databases():
    postgres = load_compose()["services"]["postgres"]
    assert "./include/docker/postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    script = PROJECT_ROOT / "include" / "docker" / "postgres-init" / "10-mlflow-databases.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    for statement in ("CREATE DATABASE mlflow OWNER mlflow", "CREATE DATABASE mlflow_auth OWNER mlflow"):
        assert statement in text
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


# -- the Airloop image --------------------------------------------------------------------------------


def locked_version(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", LOCKFILE.read_text(), re.MULTILINE)
    assert match, f"{package} is not in requirements.lock"
    return match[1]


def test_airflow_image_builds_on_the_locked_airflow_version():
    text = AIRFLOW_DOCKERFILE.read_text()
    base = re.search(r"^ARG AIRFLOW_BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is not a build argument"
    assert base[1] == f"apache/airflow:{locked_version('apache-airflow')}-python3.11"
    assert re.search(r"^FROM \$\{AIRFLOW_BASE_IMAGE\}$", text, re.MULTILINE)
    compose_default = load_compose()["x-airloop-image"]["build"]["args"]["AIRFLOW_BASE_IMAGE"]
    assert compose_default == f"${{AIRFLOW_BASE_IMAGE:-{base[1]}}}"


def test_airflow_image_installs_airloop_as_a_package_and_runs_as_airflow():
    text = AIRFLOW_DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "the image sets no USER"
    assert all(user == "airflow" for user in users), f"USER lines: {users}"
    assert "--constraint /opt/airflow/requirements.lock" in text
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text, "pip could move the base image's Airflow"
    assert "PYTHONPATH" not in text
    assert "sys.path" not in text
    copied = {line.split()[-2].rstrip("/") for line in instructions if line.startswith("COPY ")}
    assert {"dags", "plugins", "include", "requirements.lock"} <= copied
    for source in copied:
        assert (PROJECT_ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"


def test_image_build_context_leaves_out_state_environments_and_secrets():
    # The context is the repository root: without these, .env would be sent to the builder and
    # the virtualenv and state folder (gigabytes) with it.
    ignored = {line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".airloop", ".git"} <= ignored
    assert load_compose()["x-airloop-image"]["build"]["context"] == "."


# -- Helm values for the official Airflow chart --------------------------------------------------------


def chart_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(CHART_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_helm_values_validate_against_the_chart_schema():
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in chart_validator().iter_errors(load_helm_values())
    ]
    assert errors == []


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda v: v.update(executor="Celery"), id="executor-name"),
        pytest.param(lambda v: v.update(workerz={"replicas": 2}), id="unknown-key"),
        pytest.param(lambda v: v["workers"].update(replicas="two"), id="wrong-type"),
        pytest.param(lambda v: v["env"].append({"name": "AIRLOOP_X"}), id="env-without-value"),
        pytest.param(lambda v: v["images"]["airflow"].update(pullPolicy="Sometimes"), id="bad-enum"),
        pytest.param(lambda v: v["secret"].append({"envName": "X"}), id="secret-without-name"),
    ],
)
def test_invalid_helm_values_are_refused(break_it):
    values = load_helm_values()
    break_it(values)
    assert list(chart_validator().iter_errors(values))


def test_helm_volumes_are_valid_kubernetes_objects():
    values = load_helm_values()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "airflow-worker"},
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "image": values["images"]["airflow"]["repository"],
                    "volumeMounts": values["volumeMounts"],
                }
            ],
            "volumes": values["volumes"],
        },
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_helm_values_hold_no_secret():
    values = load_helm_values()
    for key in ("fernetKey", "jwtSecret", "apiSecretKey", "webserverSecretKey"):
        assert key not in values, f"{key} would put the secret in the values; use {key}SecretName"
    assert "password" not in values["redis"]
    assert "metadataConnection" not in values["data"]
    for item in values["env"]:
        assert not SECRET_NAME.search(item["name"]), f"{item['name']} belongs in `secret`, from a Kubernetes Secret"
    for name in ("metadataSecretName", "resultBackendSecretName", "brokerUrlSecretName"):
        assert values["data"][name]
    for name in ("fernetKeySecretName", "jwtSecretName", "apiSecretKeySecretName"):
        assert values[name]


def test_helm_values_allow_no_anonymous_access():
    values = load_helm_values()
    core = values["config"]["core"]
    assert core["auth_manager"].endswith("SimpleAuthManager")
    assert core["simple_auth_manager_all_admins"] == "False"
    # The passwords file is the mounted Secret, and the chart makes no user of its own.
    secret_mounts = {v["name"] for v in values["volumes"] if "secret" in v}
    mounted = {m["name"]: m["mountPath"] for m in values["volumeMounts"]}
    assert any(core["simple_auth_manager_passwords_file"].startswith(mounted[name] + "/") for name in secret_mounts)
    assert values["webserver"]["defaultUser"]["enabled"] is False


def test_helm_values_reach_the_state_volume_mlflow_and_the_training_pod():
    # Airflow puts plugins/ on its path when it runs; here the module is loaded from its file.
    train_pod_options = load_module(
        "airloop_pod", PROJECT_ROOT / "plugins" / "airloop_airflow" / "pod.py"
    ).train_pod_options
    values = load_helm_values()
    env = {item["name"]: item["value"] for item in values["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in values["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in values["volumes"] if "persistentVolumeClaim" in v
    }
    assert env["AIRLOOP_HOME"] == mounts["airloop-state"] == STATE_PATH
    assert values["images"]["airflow"]["repository"] in env["AIRLOOP_TRAIN_POD_IMAGE"]
    # The claim exists, and the MLflow URL names the Service, in deploy/kubernetes/airloop-services.yaml.
    manifests = yaml_documents(SERVICES_MANIFESTS)
    pvcs = {m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"}
    assert claims["airloop-state"] == env["AIRLOOP_TRAIN_POD_PVC"]
    assert env["AIRLOOP_TRAIN_POD_PVC"] in pvcs
    service = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "airloop-mlflow")
    port = service["spec"]["ports"][0]["port"]
    assert env["MLFLOW_TRACKING_URI"] == f"http://airloop-mlflow.{service['metadata']['namespace']}.svc:{port}"
    # The training pod these settings give mounts the same claim at the same AIRLOOP_HOME.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("AIRLOOP_TRAIN_IN_POD", "true")  # off in the values until the pod gets MLflow's login
        options = train_pod_options()
    assert options is not None
    assert options["volumes"][0].persistent_volume_claim.claim_name == claims["airloop-state"]
    assert options["volume_mounts"][0].mount_path == STATE_PATH
    assert options["env_vars"]["MLFLOW_TRACKING_URI"] == env["MLFLOW_TRACKING_URI"]


# -- Kubernetes manifests ----------------------------------------------------------------------------


def test_committed_serving_manifests_are_what_the_renderer_makes():
    module = render_serving_module()
    assert module.OUTPUT.read_text() == module.render_text(), (
        "deploy/kubernetes/serving/ is stale: run .venv/bin/python deploy/kubernetes/render_serving.py"
    )


def test_serving_manifests_validate_against_the_kubernetes_schema():
    manifests = yaml_documents(render_serving_module().OUTPUT)
    validate_manifests(manifests)
    deployment, service, autoscaler = manifests
    assert [m["kind"] for m in manifests] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_airloop_services_validate_and_run_as_non_root():
    manifests = yaml_documents(SERVICES_MANIFESTS)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    deployments = [m for m in manifests if m["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"airloop-mlflow", "airloop-evidently-ui"}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            for item in container.get("env", []):
                if SECRET_NAME.search(item["name"]):
                    assert "secretKeyRef" in item.get("valueFrom", {}), f"{item['name']} is not read from a Secret"


OFFLINE_OVERRIDE = AIRFLOW_DOCKERFILE.parent / "compose-offline.yaml"


def _pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", path.read_text(), flags=re.MULTILINE)
    return {re.sub(r"\[.*\]", "", name).lower(): version for name, version in found}


def test_the_offline_override_changes_only_where_images_come_from(tmp_path):
    """Every service it names is one of docker-compose.yaml's, and it sets nothing but image and build."""
    override = yaml.safe_load(OFFLINE_OVERRIDE.read_text())
    services = load_compose()["services"]
    assert set(override["services"]) <= set(services)
    for name, service in override["services"].items():
        assert set(service) <= {"image", "build"}, f"{name} sets {sorted(set(service) - {'image', 'build'})}"
        assert service["build"]["network"] == "host", f"{name}: apt-get needs the host's network to build"
    # Every service built from the Airloop image is built offline, so `compose build` never pulls.
    airloop = {name for name, service in services.items() if "build" in service}
    assert airloop <= set(override["services"])
    done = run_compose(filled_env(tmp_path / "env"), "-f", str(OFFLINE_OVERRIDE), "config", home=tmp_path)
    assert done.returncode == 0, done.stderr
    merged = yaml.safe_load(done.stdout)["services"]
    assert merged["postgres"]["image"] == "airloop/postgres:15-bookworm"
    assert merged["airflow-worker"]["build"]["dockerfile"].endswith("airflow-debian.Dockerfile")
    assert merged["airflow-worker"]["command"] == services["airflow-worker"]["command"]


def test_the_offline_image_installs_the_locked_versions():
    image, lock = (
        _pins(AIRFLOW_DOCKERFILE.parent / "airflow-requirements.txt"),
        _pins(PROJECT_ROOT / "requirements.lock"),
    )
    assert len(image) > 100
    assert {name: version for name, version in image.items() if lock.get(name) != version} == {}
    dev_only = {"pytest", "ruff", "mypy", "playwright", "schemathesis"}
    assert not dev_only & set(image), "the image holds no test tools"
