"""The compose stack, its image and its monitoring files are consistent and valid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.compose import needs_docker_compose, readme_env_files, run_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mmos.json"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"

SERVICES = {"postgres", "redis", "api", "worker", "adminer", "prometheus", "grafana"}
# The metric names the application exports and the dashboard charts.
METRIC_CONTRACT = (
    "mmos_http_requests_total",
    "mmos_runs_total",
    "mmos_fragments_extracted_total",
    "mmos_cost_usd_total",
    "mmos_llm_call_seconds_bucket",
    "mmos_llm_errors_total",
    "mmos_queue_depth",
    "mmos_queue_oldest_age_seconds",
    "mmos_budget_spent_usd",
    "mmos_budget_reserved_usd",
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(ROOT / "docker-compose.yml")
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def _bind_mounts(service: dict[str, Any]) -> dict[Path, str]:
    """Host path -> container path for the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[(ROOT / source).resolve()] = target
    return mounts


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


# --- docker-compose itself -------------------------------------------------------------


@needs_docker_compose
def test_docker_compose_accepts_the_file_with_the_readme_env_files(tmp_path: Path) -> None:
    result = run_config(tmp_path, readme_env_files(), "-q")

    assert result.returncode == 0, result.stderr


@needs_docker_compose
def test_docker_compose_refuses_to_run_without_the_env_files(tmp_path: Path) -> None:
    result = run_config(tmp_path, {}, "-q")

    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- the compose file --------------------------------------------------------------------


def test_compose_declares_every_service_of_the_stack(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES


def test_compose_has_no_top_level_name_that_compose_v1_rejects(compose: dict[str, Any]) -> None:
    assert "name" not in compose


@pytest.mark.parametrize("name", ["postgres", "redis", "api"])
def test_stateful_services_and_the_api_have_health_checks(
    services: dict[str, Any], name: str
) -> None:
    healthcheck = services[name]["healthcheck"]

    assert healthcheck["test"]
    assert not healthcheck.get("disable", False)


def test_postgres_is_probed_with_pg_isready_and_redis_with_ping(services: dict[str, Any]) -> None:
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_api_health_check_calls_healthz_without_curl(services: dict[str, Any]) -> None:
    probe = " ".join(services["api"]["healthcheck"]["test"])

    assert "/healthz" in probe
    assert "python" in probe and "curl" not in probe


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_wait_for_healthy_postgres_and_redis(
    services: dict[str, Any], name: str
) -> None:
    depends_on = services[name]["depends_on"]

    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_api_serves_on_all_interfaces_port_8000(services: dict[str, Any]) -> None:
    api = services["api"]

    assert _command(api) == ["mmos", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["ports"] == ["8000:8000"]
    assert api["build"] == "."


def test_app_services_read_every_setting_from_the_env_file(services: dict[str, Any]) -> None:
    assert services["api"]["env_file"] == ".env"
    assert services["worker"]["env_file"] == [".env", "worker.env"]


def test_app_services_get_database_and_redis_urls(services: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert "@postgres:5432/" in environment["DATABASE_URL"], name
        assert environment["REDIS_URL"].startswith("redis://redis:6379"), name


def test_worker_can_be_scaled(services: dict[str, Any]) -> None:
    worker = services["worker"]

    assert "container_name" not in worker
    assert "ports" not in worker
    assert _command(worker) == ["mmos", "worker"]


def test_worker_runs_the_api_image_and_exports_metrics_on_9191(services: dict[str, Any]) -> None:
    worker, api = services["worker"], services["api"]

    assert worker["image"] == api["image"]
    assert worker["environment"]["MMOS_WORKER_METRICS_PORT"] == "9191"
    assert "9191" in worker["environment"]["HEALTHCHECK_URL"]
    assert api["environment"]["MMOS_METRICS_PORT"] == "9191"
    assert worker["expose"] == api["expose"] == ["9191"]


def test_provider_keys_are_never_written_in_the_compose_file(services: dict[str, Any]) -> None:
    for name, service in services.items():
        written = {key for key in service.get("environment", {}) if key.endswith("_API_KEY")}
        assert not written, name


@pytest.mark.parametrize(("name", "mapping"), [("adminer", "127.0.0.1:8080:8080"),
                                               ("grafana", "127.0.0.1:3001:3000"),
                                               ("prometheus", "127.0.0.1:9090:9090")])
def test_web_tools_are_published_on_their_loopback_ports(
    services: dict[str, Any], name: str, mapping: str
) -> None:
    assert services[name]["ports"] == [mapping]


def test_every_named_volume_is_declared_and_the_data_services_use_one(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = set(compose["volumes"])
    used = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }

    assert used <= declared
    for name in ("postgres", "redis", "prometheus", "grafana"):
        assert any(not v.startswith((".", "/")) for v in services[name]["volumes"]), name


def test_bind_mounted_files_exist_in_the_repository(services: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        for source in _bind_mounts(services[name]):
            assert source.exists(), source


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_mounts_the_repository_config(services: dict[str, Any]) -> None:
    mounts = _bind_mounts(services["prometheus"])

    assert mounts[PROMETHEUS_CONFIG.resolve()] == "/etc/prometheus/prometheus.yml"


def test_prometheus_scrapes_the_api_metrics_endpoint() -> None:
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS_CONFIG)["scrape_configs"]}

    api = jobs["api"]
    assert api.get("metrics_path", "/metrics") == "/metrics"
    # The internal listener (MMOS_METRICS_PORT), not the public port 8000.
    assert api["static_configs"][0]["targets"] == ["api:9191"]


def test_prometheus_discovers_every_worker_replica_by_dns() -> None:
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS_CONFIG)["scrape_configs"]}

    discovery = jobs["worker"]["dns_sd_configs"][0]
    assert discovery["names"] == ["worker"]
    assert discovery["type"] == "A"
    assert discovery["port"] == 9191


# --- Grafana -----------------------------------------------------------------------------


def test_every_grafana_provisioning_file_is_valid_yaml_of_api_version_1() -> None:
    files = sorted(PROVISIONING.rglob("*.y*ml"))

    assert {path.parent.name for path in files} >= {"datasources", "dashboards"}
    for path in files:
        assert _yaml(path)["apiVersion"] == 1, path


def test_grafana_datasource_points_at_the_stack_prometheus() -> None:
    (datasource,) = _yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]

    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"]


def test_grafana_dashboard_provider_reads_the_mounted_dashboards(services: dict[str, Any]) -> None:
    (provider,) = _yaml(PROVISIONING / "dashboards" / "mmos.yml")["providers"]
    mounts = _bind_mounts(services["grafana"])

    assert provider["type"] == "file"
    assert mounts[DASHBOARD.parent.resolve()] == provider["options"]["path"]
    assert mounts[PROVISIONING.resolve()] == "/etc/grafana/provisioning"


def test_dashboard_panels_all_query_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (datasource,) = _yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]

    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]


def test_dashboard_panels_have_unique_ids() -> None:
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text())["panels"]]

    assert len(ids) == len(set(ids))


def test_dashboard_charts_every_metric_of_the_contract() -> None:
    expressions = " ".join(
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    )
    charted = set(re.findall(r"\bmmos_[a-z_]+", expressions))

    assert charted == set(METRIC_CONTRACT)


# --- the image -----------------------------------------------------------------------------


def test_image_installs_hashed_dependencies_then_the_project_alone() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert dockerfile.startswith("#")
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, flags=re.MULTILINE)
    tools = dockerfile.index("--require-hashes -r /tmp/requirements-build.lock")
    locked = dockerfile.index("--require-hashes -r /tmp/requirements.lock")
    assert tools < locked < dockerfile.index(
        "pip install --no-cache-dir --no-deps --no-build-isolation .")


def test_image_runs_as_a_non_root_user_with_a_healthz_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)

    # The instruction with its continuation lines.
    healthcheck = re.search(r"^HEALTHCHECK (?:.*\\\n)*.*$", dockerfile, flags=re.MULTILINE)

    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert healthcheck is not None
    assert "/healthz" in healthcheck.group() and "python" in healthcheck.group()
    assert "curl" not in healthcheck.group()


def test_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())

    assert {".env", "worker.env", ".git", ".venv", ".mmos"} <= ignored
