"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the structure that
makes `docker compose up --scale runtime=N` work, and commands the `yoi` CLI really accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from gateway.cli import app
from shared.settings import Settings
from tests.packaging.support import BUILD_CONTEXT, WHEEL_BUILD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def test_services_and_their_health(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert set(svc) == {"redis", "gateway", "runtime"}
    assert svc["redis"]["image"].startswith("redis:7")
    assert svc["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    health = " ".join(svc["gateway"]["healthcheck"]["test"])
    assert "python" in health and "/healthz" in health
    for name in ("gateway", "runtime"):
        assert svc[name]["build"] == "."
        assert svc[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_redis_persists_with_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = services(compose)["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]


def test_the_gateways_data_dir_is_a_volume_made_by_the_image(compose: dict[str, Any]) -> None:
    """The Companion's store (issue 11) outlives `docker compose down` and a rebuild."""
    (volume,) = services(compose)["gateway"]["volumes"]
    name, mounted = volume.split(":")
    assert name in compose["volumes"]
    _, final = dockerfile_stages()
    assert f"ENV YOI_DATA_DIR={mounted}" in final
    # Made as `yoi`, after `USER yoi`: a fresh named volume takes the folder's owner.
    assert final.index("USER yoi") < final.index(f"RUN mkdir -p {mounted}")


def test_runtime_scales(compose: dict[str, Any]) -> None:
    runtime = services(compose)["runtime"]
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in runtime
    assert services(compose)["gateway"]["ports"] == ["8000:8000"]


def test_the_token_is_required_from_the_environment(compose: dict[str, Any]) -> None:
    env = services(compose)["gateway"]["environment"]
    assert env["YOI_API_TOKEN"] == "${YOI_API_TOKEN:?set YOI_API_TOKEN}"


def test_every_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, service in services(compose).items():
        for variable in service.get("environment", {}):
            assert variable == "REDIS_URL" or (
                variable.startswith("YOI_") and variable[4:].lower() in fields
            ), f"{name}: {variable} is not a Settings field"
    for name in ("gateway", "runtime"):
        assert services(compose)[name]["environment"]["YOI_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("service", ["gateway", "runtime"])
def test_service_commands_parse_with_the_cli(compose: dict[str, Any], service: str) -> None:
    argv = services(compose)[service]["command"]
    assert argv[:2] == ["yoi", service]
    command = get_command(app)
    with command.make_context("yoi", list(argv[1:]), resilient_parsing=False) as ctx:
        sub = command.get_command(ctx, argv[1])  # type: ignore[attr-defined]
        assert sub is not None
        sub.make_context(argv[1], list(argv[2:]), parent=ctx)


def test_gateway_serves_the_fleet_the_runtimes_join(compose: dict[str, Any]) -> None:
    gateway = services(compose)["gateway"]["command"]
    runtime = services(compose)["runtime"]["command"]
    assert gateway[gateway.index("--fleet") + 1] == runtime[runtime.index("--runtime-id") + 1]
    assert gateway[gateway.index("--host") + 1] == "0.0.0.0"


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's stages, each a list of its instructions (continuations joined)."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for raw in joined.splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_builds_the_wheel_like_ci_then_installs_that_wheel() -> None:
    build, final = dockerfile_stages()
    assert build[0] == "FROM python:3.11-slim AS build" and final[0] == "FROM python:3.11-slim"
    # Stage 1: the wheel, built from the context and with the command the wheel tests use.
    (wheel,) = [line for line in build if line.startswith("RUN ")]
    assert wheel == f"RUN {' '.join(WHEEL_BUILD)} /dist ."
    assert not [line for line in build if "pip install" in line]
    # Stage 2: only that wheel, at the versions CI ran; no source tree in the image.
    assert "COPY --from=build /dist /tmp/dist" in final
    assert "COPY constraints.txt /tmp/constraints.txt" in final
    (install,) = [line for line in final if "pip install" in line]
    assert install.startswith(
        "RUN pip install --no-cache-dir -c /tmp/constraints.txt /tmp/dist/yoi_fleet-*.whl"
    )
    assert not [line for line in final if line.startswith("COPY") and "--from" not in line][1:]
    # CI (.ci/run -> ./run tests) installs the same project at the same pins, plus dev tools.
    ci = [line.strip() for line in (ROOT / "run").read_text().splitlines() if "pip install" in line]
    assert any(line.endswith('pip install --quiet -c constraints.txt -e ".[dev]"') for line in ci)


def test_dockerfile_copies_what_the_wheel_build_needs() -> None:
    build, _ = dockerfile_stages()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["yoi"] == "gateway.cli:main"  # the `yoi` the services run
    copied = [line.split()[1:-1] for line in build if line.startswith("COPY")]
    assert sorted(name for names in copied for name in names) == sorted(BUILD_CONTEXT)
    assert project["readme"] in BUILD_CONTEXT
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert not {*BUILD_CONTEXT, "constraints.txt"} & set(ignored)
