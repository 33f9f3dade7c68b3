"""The production deployment files, checked by parsing (no Docker engine on the CI machines).

docker-compose.yml, Dockerfile and .dockerignore must agree with the code: real CLI
subcommands, settings that ``Settings.from_env`` reads, Kafka listeners the services can reach,
the sink's ClickHouse credentials equal to the server's, and no default passwords.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from meterline import cli
from meterline.schemas import Topics
from meterline.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("topics", "processor", "sink")
SECRETS = {"CLICKHOUSE_PASSWORD": "pw-for-tests-only", "GRAFANA_ADMIN_PASSWORD": "gf-for-tests"}
GRAFANA_DIR = ROOT / "deploy" / "grafana"

# Compose interpolation: $$ escape, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` variable is unset: ``docker compose`` would refuse to start."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``value`` as docker compose interpolates it against ``env``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        return current or ""

    return _INTERPOLATION.sub(one, value)


def variables(value: str) -> Iterator[tuple[str, str | None]]:
    """(name, operator) of each variable referenced in ``value``."""
    for m in _INTERPOLATION.finditer(value):
        if m.group(0) != "$$":
            yield m.group("name") or m.group("bare"), m.group("op")


def strings(node: Any) -> Iterator[str]:
    """Every string (mapping keys included) anywhere in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def raw_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {str(k): str(v) for k, v in env.items()}


def env(service: dict[str, Any], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The container environment with the operator's variables (``SECRETS`` + ``extra``) set."""
    host = {**SECRETS, **(extra or {})}
    return {k: interpolate(v, host) for k, v in raw_env(service).items()}


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    result: dict[str, tuple[str, int]] = {}
    for item in spec.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_the_pipeline_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "clickhouse", *APP_SERVICES, "dashboard", "grafana"} <= set(services)


@pytest.mark.parametrize(
    ("service", "repository", "tag_pattern"),
    [
        ("kafka", "apache/kafka", r"[34]\.\d+\.\d+"),
        ("clickhouse", "clickhouse/clickhouse-server", r"\d+\.\d+(\.\d+)*"),
    ],
)
def test_services_use_official_images_with_pinned_tags(
    services: dict[str, dict[str, Any]], service: str, repository: str, tag_pattern: str
) -> None:
    image = services[service]["image"]
    name, _, tag = image.partition(":")
    assert name == repository
    assert re.fullmatch(tag_pattern, tag), f"{image}: pin a release tag (not latest)"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_from_the_repo_dockerfile_and_can_scale(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    build = service["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    # `docker compose up --scale processor=N` needs no fixed name and no fixed host port
    assert "container_name" not in service
    assert "ports" not in service


def test_dockerfile_runs_meterline_from_the_pipeline_extra_as_non_root() -> None:
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install \"?\.\[pipeline(,gateway)?(,rocksdb)?\]", runs)
    assert "embedded" not in runs and "chdb" not in runs
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoints = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert entrypoints[-1:] == [["meterline"]]


@pytest.mark.parametrize(
    ("service", "func"),
    [
        ("processor", cli.worker.cmd_worker),
        ("sink", cli.sink.cmd_sink),
        ("dashboard", cli.dashboard.cmd_dashboard),
    ],
)
def test_commands_are_real_cli_subcommands(
    services: dict[str, dict[str, Any]], service: str, func: Any
) -> None:
    assert "entrypoint" not in services[service]  # the image's ENTRYPOINT ["meterline"]
    args = cli.parser().parse_args(services[service]["command"])
    assert args.func is func


def test_kafka_is_a_single_node_kraft_cluster(services: dict[str, dict[str, Any]]) -> None:
    kafka = env(services["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    bound = listeners(kafka["KAFKA_LISTENERS"])
    advertised = listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(bound) <= set(protocols)
    assert controller in bound and controller not in advertised
    assert set(advertised) <= set(bound)
    assert all(advertised[n][1] == bound[n][1] for n in advertised)
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        f"{kafka['KAFKA_NODE_ID']}@kafka:{bound[controller][1]}"
    )
    assert kafka["CLUSTER_ID"]
    for name in (
        "OFFSETS_TOPIC_REPLICATION_FACTOR",
        "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert kafka[f"KAFKA_{name}"] == "1", name  # one broker


def test_app_services_bootstrap_from_kafkas_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = env(services["kafka"])
    bound = listeners(kafka["KAFKA_LISTENERS"])
    internal = {
        name: port
        for name, (host, port) in listeners(kafka["KAFKA_ADVERTISED_LISTENERS"]).items()
        if host == "kafka"
    }
    assert kafka.get("KAFKA_INTER_BROKER_LISTENER_NAME", next(iter(internal))) in internal
    for name in APP_SERVICES:
        host, _, port = env(services[name])["METERLINE_KAFKA_BOOTSTRAP"].rpartition(":")
        assert host == "kafka", name
        assert int(port) in internal.values(), f"{name}: {port} is not kafka's internal listener"
        assert any(bound[n][1] == int(port) for n in internal)
    # the health check probes the same listener the services use
    probe = " ".join(services["kafka"]["healthcheck"]["test"])
    assert re.search(
        rf"--bootstrap-server localhost:({'|'.join(map(str, internal.values()))})\b", probe
    )


@pytest.mark.parametrize("reader", ["sink", "dashboard"])
def test_sink_and_dashboard_reach_clickhouse_with_the_servers_credentials(
    services: dict[str, dict[str, Any]], reader: str
) -> None:
    for extra in ({}, {"CLICKHOUSE_USER": "ops"}):
        server = env(services["clickhouse"], extra)
        url = urlsplit(env(services[reader], extra)["METERLINE_CLICKHOUSE_URL"])
        assert url.scheme == "http"
        assert (url.hostname, url.port) == ("clickhouse", 8123)
        assert url.username == server["CLICKHOUSE_USER"]
        assert url.password == server["CLICKHOUSE_PASSWORD"] == SECRETS["CLICKHOUSE_PASSWORD"]
    # only the sink talks to ClickHouse: the others get no credentials
    for name in ("topics", "processor"):
        assert not any("CLICKHOUSE" in value for value in raw_env(services[name]).values())


def test_no_password_has_a_default(compose: dict[str, Any]) -> None:
    found = 0
    for text in strings(compose):
        for name, op in variables(text):
            if "PASSWORD" in name.upper():
                found += 1
                assert op is None or op.endswith("?"), f"${{{name}{op}...}} ships a default"
    assert found, "expected CLICKHOUSE_PASSWORD to be interpolated"
    for service in compose["services"].values():
        for key, value in raw_env(service).items():
            if "PASSWORD" in key.upper():
                assert list(variables(value)), f"{key} is a literal"


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("clickhouse", "CLICKHOUSE_PASSWORD"),
        ("sink", "CLICKHOUSE_PASSWORD"),
        ("dashboard", "CLICKHOUSE_PASSWORD"),
        ("grafana", "CLICKHOUSE_PASSWORD"),
        ("grafana", "GRAFANA_ADMIN_PASSWORD"),
    ],
)
def test_compose_refuses_to_start_without_a_password(
    services: dict[str, dict[str, Any]], name: str, missing: str
) -> None:
    others = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(MissingVariable, match=missing):
        {k: interpolate(v, others) for k, v in raw_env(services[name]).items()}


def test_published_ports_are_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = [(n, p) for n, s in services.items() for p in s.get("ports", [])]
    assert published  # agents on this host reach Kafka; operators query ClickHouse
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_infrastructure_is_health_checked_and_awaited(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "clickhouse"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    wanted = {
        "topics": {"kafka": "service_healthy"},
        "processor": {"kafka": "service_healthy", "topics": "service_completed_successfully"},
        "sink": {
            "kafka": "service_healthy",
            "clickhouse": "service_healthy",
            "topics": "service_completed_successfully",
        },
    }
    for name, deps in wanted.items():
        got = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert got == deps, name


def test_kafka_and_clickhouse_keep_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    for name, data_dir in (
        ("kafka", env(services["kafka"])["KAFKA_LOG_DIRS"]),
        ("clickhouse", "/var/lib/clickhouse"),
    ):
        mounts = dict(v.split(":")[1::-1] for v in services[name]["volumes"])
        assert mounts.get(data_dir) in declared, f"{name}: {data_dir} is not a named volume"


@pytest.mark.parametrize("partitions", [None, "12"])
def test_partition_count_is_the_same_everywhere(
    services: dict[str, dict[str, Any]], partitions: str | None
) -> None:
    extra = {"METERLINE_PARTITIONS": partitions} if partitions else {}
    counts = {name: env(services[name], extra)["METERLINE_PARTITIONS"] for name in APP_SERVICES}
    counts["kafka"] = env(services["kafka"], extra)["KAFKA_NUM_PARTITIONS"]
    assert len(set(counts.values())) == 1, counts
    assert int(counts["sink"]) >= 1 and (partitions is None or counts["sink"] == partitions)


class _RecordingEnv(dict[str, str]):
    """An environ that remembers which names were looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_every_meterline_variable_is_a_setting_the_code_reads(compose: dict[str, Any]) -> None:
    recording = _RecordingEnv()
    Settings.from_env(recording)
    used = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    used |= set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", DOCKERFILE.read_text()))
    assert used and used <= recording.read, sorted(used - recording.read)


@pytest.mark.parametrize("name", [*APP_SERVICES, "dashboard"])
def test_meterline_settings_arrive_with_the_compose_values(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    values = {k: v for k, v in env(services[name]).items() if k.startswith(ENV_PREFIX)}
    settings = Settings.from_env(values)
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
    for key, value in values.items():
        field = key.removeprefix(ENV_PREFIX).lower()
        assert field in defaults, key
        default = defaults[field]
        expected = value if default is None else type(default)(value)  # optional str fields
        assert getattr(settings, field) == expected, key


def test_topics_service_creates_every_topic_co_partitioned(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterline import cli

    service = services["topics"]
    assert "entrypoint" not in service  # the image's: meterline
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "meterline.ops.admin.ensure_topics", lambda *a, **kw: calls.append((*a, kw))
    )
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env(service).items():
        monkeypatch.setenv(key, value)
    assert cli.main(service["command"]) == 0
    # no access settings in the compose file: PLAINTEXT on the internal network
    # topics as the worker expects them: Kafka's size limit and replication factor explicit
    expected = {
        "replication_factor": 1,
        "config": {},
        "topic_configs": {"max.message.bytes": str(8 * 1024 * 1024)},
    }
    assert calls == [("kafka:9092", Topics("meterline").all, 8, expected)]


def test_dockerignore_drops_local_state_but_keeps_the_package_sources() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)

    for path in (".git", ".venv", ".meterline", ".pytest_cache", "__pycache__", "tests"):
        assert ignored(path), path
    for path in (
        "pyproject.toml",
        "README.md",
        "meterline",
        "producers",
        "stream_processors",
        "sinks",
        "schemas",
    ):
        assert not ignored(path), path
