"""The compose stack and its image are safe as deployed (SECURITY.md, "Deployment").

Each stack property is checked on what docker-compose v1.29 resolves (`config`, offline) from
the `.env` and `worker.env` the README shows; the image's on the Dockerfile and its locks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.compose import (
    ROOT,
    needs_docker_compose,
    readme_env_files,
    resolved_config,
    run_config,
    without_line,
)

PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")
# A variable a model's apiKeyEnv may name: operators add such keys to worker.env.
CUSTOM_KEY = "LOCAL_LLAMA_API_KEY"
OPERATOR_TOOLS = ("prometheus", "grafana", "adminer")
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
# Settings the stack fixes for Prometheus, whatever .env says.
FIXED = {"api": {"MMOS_METRICS_PORT": "9191"}, "worker": {"MMOS_WORKER_METRICS_PORT": "9191"}}
# Release numbers with this many parts are exact (PostgreSQL's are major.minor since 10).
VERSION_PARTS = {"postgres": 2}
EXACT_TAG = re.compile(r"^v?(?P<version>\d+(?:\.\d+)*)(?:-[\w.-]+)?$")


@pytest.fixture(scope="module")
def readme_files() -> dict[str, str]:
    files = readme_env_files()
    assert set(files) == {".env", "worker.env"}
    return files


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory,
             readme_files: dict[str, str]) -> dict[str, Any]:
    """The stack's services as resolved with the README's files (and one custom key)."""
    files = dict(readme_files)
    files["worker.env"] += f"{CUSTOM_KEY}=sk-local-llama\n"
    services: dict[str, Any] = resolved_config(tmp_path_factory.mktemp("stack"), files)["services"]
    return services


def _env_values(content: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in content.splitlines()
             if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def _host_ips(ports: list[Any]) -> list[str]:
    """The host address each published port binds ("" = every interface)."""
    ips = []
    for port in ports:
        if isinstance(port, dict):
            ips.append(str(port.get("host_ip", "")))
        else:
            parts = str(port).split(":")
            ips.append(parts[0] if len(parts) == 3 else "")
    return ips


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _lock_pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Package name -> (version, hashes) of a pip-compile lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        requirement = re.match(r"^([A-Za-z0-9][\w.-]*)(?:\[[^\]]*\])?==(\S+)", line)
        if requirement:
            current = requirement.group(1).lower()
            pins[current] = (requirement.group(2), [])
        elif current and (digest := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            pins[current][1].append(digest.group(1))
    return pins


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions with continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [" ".join(i.split()) for i in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
            if i.strip()]


def _pip_installs() -> list[str]:
    return [i for i in _dockerfile_instructions() if i.startswith("RUN") and "pip install" in i]


def _installed_locks() -> dict[str, Path]:
    """Each `-r` file a Dockerfile `pip install` reads -> the repository file copied there."""
    copies = {}
    for instruction in _dockerfile_instructions():
        if instruction.startswith("COPY "):
            *sources, target = instruction.split()[1:]
            for source in sources:
                copies[target] = ROOT / source
    locks = {}
    for install in _pip_installs():
        for target in re.findall(r"-r\s+(\S+)", install):
            locks[target] = copies[target]
    return locks


# --- the stack, as docker-compose resolves it --------------------------------------------


@needs_docker_compose
def test_operator_tools_publish_on_loopback_only(deployed: dict[str, Any]) -> None:
    for name in OPERATOR_TOOLS:
        assert set(_host_ips(deployed[name].get("ports", []))) <= {"127.0.0.1"}, name


@needs_docker_compose
def test_only_the_api_publishes_beyond_loopback(deployed: dict[str, Any]) -> None:
    public = {name for name, service in deployed.items()
              if set(_host_ips(service.get("ports", []))) - {"127.0.0.1"}}

    assert public == {"api"}


@needs_docker_compose
def test_adminer_needs_the_debug_profile(deployed: dict[str, Any]) -> None:
    assert deployed["adminer"]["profiles"] == ["debug"]
    assert all("profiles" not in deployed[name] for name in set(deployed) - {"adminer"})


@needs_docker_compose
@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_run_in_production_mode(deployed: dict[str, Any], name: str) -> None:
    assert deployed[name]["environment"]["MMOS_ENV"] == "production"


@needs_docker_compose
def test_every_setting_in_env_reaches_the_app_services(
    tmp_path: Path, readme_files: dict[str, str]
) -> None:
    from api.settings import Settings

    # Given: one line per setting in .env (those read under another name left out)
    probes = {f"MMOS_{name.upper()}": f"probe-{name}"
              for name, field in Settings.model_fields.items() if field.validation_alias is None}
    env = readme_files[".env"] + "".join(f"{key}={value}\n" for key, value in probes.items())

    # When
    services = resolved_config(tmp_path, {**readme_files, ".env": env})["services"]

    # Then: each reaches both app services; only the metrics ports are the stack's own
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        for key, value in probes.items():
            assert environment.get(key) == FIXED[name].get(key, value), (name, key)


@needs_docker_compose
@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_config_fails_without_a_required_secret(
    tmp_path: Path, readme_files: dict[str, str], secret: str, how: str
) -> None:
    env = without_line(readme_files[".env"], secret)
    if how == "empty":
        env += f"{secret}=\n"

    result = run_config(tmp_path, {**readme_files, ".env": env}, "-q")

    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr, result.stderr


@needs_docker_compose
def test_provider_keys_reach_the_worker_only(
    deployed: dict[str, Any], readme_files: dict[str, str]
) -> None:
    given = _env_values(readme_files["worker.env"])
    worker = deployed["worker"]["environment"]

    for key in PROVIDER_KEYS:
        assert worker[key] == given[key], key
    assert worker[CUSTOM_KEY] == "sk-local-llama"
    for name, service in deployed.items():
        if name == "worker":
            continue
        leaked = {key for key in service.get("environment") or {} if key.endswith("_API_KEY")}
        assert not leaked, (name, leaked)
    # The stack's own secrets are compose's business, not the application's.
    for name in ("api", "worker"):
        environment = deployed[name]["environment"]
        assert not environment.get("GRAFANA_ADMIN_PASSWORD"), name
        assert not environment.get("POSTGRES_PASSWORD"), name


def _assert_exact(image: str) -> None:
    reference, _, digest = image.partition("@")
    if digest:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image
        return
    repository, _, tag = reference.rpartition(":")
    exact = EXACT_TAG.match(tag)
    assert repository and exact, f"{image}: no exact tag (latest, a bare major or none)"
    parts = VERSION_PARTS.get(repository.rsplit("/", 1)[-1], 3)
    assert len(exact.group("version").split(".")) >= parts, f"{image}: not an exact release"


@needs_docker_compose
def test_images_have_exact_tags(deployed: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in deployed.items() if "build" not in s}

    assert set(images) == {"postgres", "redis", "adminer", "prometheus", "grafana"}
    for image in images.values():
        _assert_exact(image)


def test_image_base_has_an_exact_tag() -> None:
    (base,) = [i.split()[1] for i in _dockerfile_instructions() if i.startswith("FROM ")]

    _assert_exact(base)


@pytest.mark.parametrize("image", ["redis", "redis:latest", "redis:7", "redis:7.4",
                                   "postgres:16", "prom/prometheus:v2", "grafana/grafana:11.3"])
def test_floating_tags_are_not_taken_for_exact_ones(image: str) -> None:
    with pytest.raises(AssertionError):
        _assert_exact(image)


@needs_docker_compose
def test_every_service_rotates_logs_and_has_a_memory_limit(deployed: dict[str, Any]) -> None:
    for name, service in deployed.items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), name
        limit = service.get("mem_limit") or (
            service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory"))
        assert limit, name


@needs_docker_compose
def test_stop_grace_periods_outlast_graceful_shutdown(deployed: dict[str, Any]) -> None:
    from api.settings import Settings

    serve = re.search(r"timeout_graceful_shutdown=(\d+)", (ROOT / "api" / "cli.py").read_text())
    assert serve, "mmos serve sets uvicorn's timeout_graceful_shutdown"
    provider_call = Settings.model_fields["llm_timeout_seconds"].default

    assert _seconds(deployed["api"]["stop_grace_period"]) > int(serve.group(1))
    assert _seconds(deployed["worker"]["stop_grace_period"]) > provider_call
    for name in ("postgres", "redis"):
        assert _seconds(deployed[name]["stop_grace_period"]) > 10, name  # Docker's default


@needs_docker_compose
def test_prometheus_scrapes_unpublished_metrics_ports(deployed: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_port = deployed["api"]["environment"]["MMOS_METRICS_PORT"]
    worker_port = deployed["worker"]["environment"]["MMOS_WORKER_METRICS_PORT"]

    assert jobs["api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    assert jobs["worker"]["dns_sd_configs"][0]["port"] == int(worker_port)
    for name, port in (("api", api_port), ("worker", worker_port)):
        published = {str(p.get("target")) if isinstance(p, dict) else str(p).split(":")[-1]
                     for p in deployed[name].get("ports", [])}
        assert port not in {p.split("/")[0] for p in published}, name
    # No key to hand to Prometheus, and the public /metrics keeps its rules.
    assert "authorization" not in jobs["api"] and "bearer_token" not in jobs["api"]
    assert deployed["api"]["environment"].get("MMOS_METRICS_PUBLIC", "false") == "false"


@pytest.mark.slow
def test_internal_metrics_port_needs_no_key_and_public_metrics_still_does(
    database_url: str, tmp_path: Path
) -> None:
    from tests.support.serve import free_port
    from tests.support.serve_process import serve_env, serving

    # Given: `mmos serve` in production (keys required) with the internal listener
    metrics_port = free_port()
    env = serve_env(database_url, tmp_path, MMOS_ENV="production",
                    MMOS_METRICS_PORT=str(metrics_port))

    with serving(env, tmp_path) as served:
        served.wait_healthy()

        # When
        internal = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        public = httpx.get(f"{served.url}/metrics", timeout=10)

    # Then: Prometheus gets everything the dashboard charts, the database totals included
    assert internal.status_code == 200, internal.text
    assert "mmos_http_requests_total" in internal.text
    assert re.search(r"^mmos_budget_spent_usd \S+$", internal.text, flags=re.MULTILINE)
    assert "mmos_queue_oldest_age_seconds" in internal.text
    assert public.status_code == 401


# --- the image -----------------------------------------------------------------------------


def test_image_installs_no_pgserver() -> None:
    locks = _installed_locks()
    installs = " ".join(_pip_installs())

    assert {path.name for path in locks.values()} == {"requirements-build.lock",
                                                      "requirements.lock"}
    for path in locks.values():
        assert "pgserver" not in _lock_pins(path), path.name
    assert "pgserver" not in installs and "embedded" not in installs
    # The project itself comes without dependencies: pyproject's list cannot add any.
    assert re.search(r"pip install .*--no-deps.* \.(\s|$)", installs)


def test_pgserver_and_what_only_it_needs_live_in_the_embedded_lock() -> None:
    runtime = _lock_pins(ROOT / "requirements.lock")
    embedded = _lock_pins(ROOT / "requirements-embedded.lock")
    install = (ROOT / "scripts" / "install").read_text()

    assert "pgserver" in embedded and "pgserver" not in runtime
    assert not set(embedded) & set(runtime)
    assert all(hashes for _, hashes in embedded.values())
    assert "requirements.lock requirements-embedded.lock" in install


def test_image_build_tools_come_from_a_hashed_lock() -> None:
    build = _lock_pins(ROOT / "requirements-build.lock")
    installs = _pip_installs()
    locked = [i for i in installs if "-r /tmp/requirements-build.lock" in i]

    assert {"pip", "setuptools", "wheel"} <= set(build)
    assert all(hashes for _, hashes in build.values())
    assert len(locked) == 1 and "--require-hashes" in locked[0]
    # First, before anything else is installed or built.
    assert installs[0] == locked[0]
    # Every other install is hashed too, or builds the project with those tools alone.
    for install in installs[1:]:
        assert "--require-hashes" in install or (
            "--no-deps" in install and "--no-build-isolation" in install), install


def test_secret_files_stay_out_of_the_image_and_git() -> None:
    docker_ignored = set((ROOT / ".dockerignore").read_text().split())
    git_ignored = set((ROOT / ".gitignore").read_text().split())

    assert {".env", "worker.env"} <= docker_ignored
    assert {".env", "worker.env"} <= git_ignored
