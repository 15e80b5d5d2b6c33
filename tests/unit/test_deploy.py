"""deploy/: the production topology holds together without running a container.

Containers cannot run on the machines that test citywatch, so these tests check what can be
checked here: the example config passes `citywatch config check`; every citywatch command
line in the compose file parses against the real CLI; the compose file's Kafka, bridges,
center, proxy and health checks agree with each other and with the config; the image build
file installs what scripts/setup.sh installs (or the test names why not); and, running
deploy/scripts/prepare.sh for real, every file the compose file mounts is made and every TLS
certificate verifies with the client context citywatch uses.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from ruamel.yaml import YAML
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import CitywatchConfig, load_config
from citywatch.config.secrets import secret_name
from citywatch.stack.ports import LOOPBACK, pick_free_port
from citywatch.tls_client import client_context

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
CONFIG = DEPLOY / "config" / "citywatch.yaml"
GENERATED = ("./tls", "./secrets", "./mosquitto")
"""Compose paths prepare.sh makes on the host at first start (never committed)."""

# What scripts/setup.sh installs that no image does, and why: the test fails when setup.sh
# gains a package nobody decided about.
NOT_IN_IMAGES_EXTRAS = {
    "stack": "the embedded single-machine stack (Tansu); production runs real Kafka",
    "stack-fallback": "pure-pip stand-ins for Debian's Mosquitto and PostgreSQL",
    "dev": "tests, lint and type checks",
}
NOT_IN_IMAGES_DEBIAN = {
    "mosquitto": "runs as its own container (eclipse-mosquitto)",
    "postgresql": "runs as its own container (timescale/timescaledb)",
    "chromium": "the console's browser test",
    "fonts-wqy-microhei": "the console's browser test",
    "gstreamer1.0-rtsp": "the live RTSP camera test",
    "gir1.2-gst-rtsp-server-1.0": "the live RTSP camera test",
    "gstreamer1.0-plugins-base": "the live RTSP camera test",
    "gstreamer1.0-plugins-good": "the live RTSP camera test",
    "gstreamer1.0-plugins-ugly": "the live RTSP camera test",
    "python3-gi": "the live RTSP camera test",
}
TARGET_EXTRAS = {
    "stream": {"stream"},
    "center": {"center"},
    "edge": {"edge"},
    "edge-vision": {"edge", "vision"},
}
"""Each image installs its tier only: a gateway never gets Faust or psycopg."""


# -- reading the files -------------------------------------------------------------------------
def env_defaults() -> dict[str, str]:
    """The variables of env.example (what `.env` starts from)."""
    pairs = (
        line.split("=", 1) for line in (DEPLOY / "compose" / "env.example").read_text().splitlines()
    )
    return {
        key: value for key, *rest in pairs if not key.startswith("#") and rest for value in rest
    }


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}`, then `$$` → `$`."""

    def value(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if op.endswith("?"):
            return f"<{name} unset>"
        return default

    text = re.sub(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}", value, text)
    return text.replace("$$", "$")


def load_compose() -> dict[str, Any]:
    env = env_defaults() | {"KAFKA_CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk"}
    data: dict[str, Any] = YAML(typ="safe").load(interpolate(COMPOSE.read_text(), env))
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def site() -> CitywatchConfig:
    return load_config(CONFIG)


def citywatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from deploy/Dockerfile, whose entrypoint is `citywatch`."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def option(command: list[str], name: str) -> str:
    assert name in command, f"{command} has no {name}"
    return command[command.index(name) + 1]


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host source, container target) of a service's bind mounts."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            yield source, target


def host_path(service: dict[str, Any], container_path: str, compose_dir: Path) -> Path:
    """Where a file the container reads lies on the host, through the service's bind mounts."""
    for source, target in mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return compose_dir / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not under any bind mount of the service")


def dockerfile_stages() -> dict[str, str]:
    """Each build stage's name and text."""
    parts = re.split(r"^FROM .* AS (\S+)\s*$", (DEPLOY / "Dockerfile").read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def parse_command_line(root: Any, name: str, args: list[str]) -> None:
    """Parse ``citywatch ARGS`` as the CLI would (unknown options and bad values raise), and
    check that ``citywatch ARGS --help`` exits 0."""
    command = root
    path: list[str] = []
    while (children := getattr(command, "commands", None)) is not None:  # a group
        path.append(args[len(path)])
        assert path[-1] in children, f"{name}: no command {' '.join(path)}"
        command = children[path[-1]]
    command.make_context(" ".join(path), list(args[len(path) :]))
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"{name}: {result.output}"


def apt_packages(script: str) -> set[str]:
    """Packages named on `apt-get install` lines (continuations joined) and `need_pkgs+=(…)`."""
    joined = script.replace("\\\n", " ")
    found = set(re.findall(r"need_pkgs\+=\(([\w.+-]+)\)", joined))
    for line in re.findall(r"apt-get install ([^\n>&]*)", joined):
        found |= {t for t in line.split() if not t.startswith(("-", '"'))}
    return found


# -- the config ------------------------------------------------------------------------------
def test_example_config_passes_config_check() -> None:
    """`citywatch config check deploy/config/citywatch.yaml` exits 0 with no problem."""
    result = CliRunner().invoke(app, ["config", "check", str(CONFIG)])
    assert result.exit_code == 0, result.output
    assert "✓" in result.output


def test_example_config_uses_external_services_over_tls(site: CitywatchConfig) -> None:
    """MQTT over mqtts with the site CA, Kafka over mutual TLS with 3 copies and min ISR 2,
    PostgreSQL with verify-full: nothing embedded, nothing in clear."""
    services = site.services
    assert services.mqtt.url.startswith("mqtts://") and services.mqtt.ca_file
    assert services.kafka.security_protocol == "SSL" and services.kafka.cert_file
    assert (services.kafka.replication_factor, services.kafka.min_insync_replicas) == (3, 2)
    assert services.kafka.acks == "all" and services.kafka.idempotent_producer
    assert services.database.sslmode == "verify-full" and services.database.sslrootcert
    assert site.center.tls is None and site.center.trusted_proxies


# -- commands ----------------------------------------------------------------------------------
def test_every_citywatch_command_in_compose_parses(compose: dict[str, Any]) -> None:
    """Each service's command line parses against the real CLI (every option exists, every
    value has its type) and `COMMAND --help` exits 0."""
    root = typer.main.get_command(app)
    services = citywatch_services(compose)
    assert {"migrate", "worker", "bridge-1", "bridge-2", "center"} <= set(services)
    for name, service in services.items():
        parse_command_line(root, name, service["command"])


def test_images_run_citywatch_as_their_entrypoint(compose: dict[str, Any]) -> None:
    """The compose commands are arguments of `citywatch`: every target the compose file
    builds has that entrypoint."""
    stages = dockerfile_stages()
    for name, service in citywatch_services(compose).items():
        target = service["build"]["target"]
        assert 'ENTRYPOINT ["citywatch"]' in stages[target], f"{name}: target {target}"


def test_health_checks_probe_the_metrics_port_of_their_command(compose: dict[str, Any]) -> None:
    """Every long-running citywatch service serves --metrics-port and its health check asks
    that port's /readyz or /healthz."""
    for name, service in citywatch_services(compose).items():
        if service.get("restart") == "no":
            continue
        port = option(service["command"], "--metrics-port")
        probe = " ".join(service["healthcheck"]["test"])
        assert re.search(rf"http://127\.0\.0\.1:{port}/(readyz|healthz)\b", probe), name


# -- topology ---------------------------------------------------------------------------------
def test_services_reach_the_broker_by_the_name_gateways_use(
    compose: dict[str, Any], site: CitywatchConfig
) -> None:
    """The host of services.mqtt.url is an alias of the mosquitto service (CITYWATCH_MQTT_HOST
    of env.example), so the config serves gateways and services alike."""
    host = urlsplit(site.services.mqtt.url).hostname
    assert host == env_defaults()["CITYWATCH_MQTT_HOST"]
    assert compose["services"]["mosquitto"]["networks"]["backend"]["aliases"] == [host]


def test_kafka_is_three_kraft_nodes_the_config_bootstraps_from(
    compose: dict[str, Any], site: CitywatchConfig
) -> None:
    """Three broker+controller nodes with distinct ids, a quorum naming all three, topic
    defaults of replication 3 / min ISR 2 as the config's, advertised where the config looks;
    Kafka's own tools log in with the key store the brokers use."""
    nodes = {
        n: s for n, s in compose["services"].items() if "KAFKA_NODE_ID" in s.get("environment", {})
    }
    envs = [s["environment"] for s in nodes.values()]
    assert len(nodes) == 3 and {e["KAFKA_NODE_ID"] for e in envs} == {1, 2, 3}
    voters = {f"{e['KAFKA_NODE_ID']}@{n}:9093" for n, e in zip(nodes, envs, strict=True)}
    advertised = set()
    for env in envs:
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == site.services.kafka.replication_factor
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == site.services.kafka.min_insync_replicas
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert "PLAINTEXT" not in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"]  # the image would want JKS
        advertised |= set(re.findall(r"CLIENT://([\w.-]+:\d+)", env["KAFKA_ADVERTISED_LISTENERS"]))
    assert advertised == set(site.services.kafka.bootstrap.split(","))
    tools = dict(
        line.split("=", 1)
        for line in (DEPLOY / "kafka" / "client.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert tools["ssl.keystore.location"] == envs[0]["KAFKA_SSL_KEYSTORE_LOCATION"]
    assert tools["ssl.truststore.location"] == envs[0]["KAFKA_SSL_TRUSTSTORE_LOCATION"]


def test_bridges_share_the_subscription_with_fixed_ids_and_workers_scale(
    compose: dict[str, Any],
) -> None:
    """At least two bridges, each with its own --bridge-id (its persistent MQTT session);
    at least two workers in the consumer group by default."""
    services = citywatch_services(compose)
    ids = [
        option(s["command"], "--bridge-id")
        for s in services.values()
        if s["command"][:2] == ["stream", "bridge"]
    ]
    assert len(ids) >= 2 and len(set(ids)) == len(ids)
    assert int(services["worker"]["deploy"]["replicas"]) >= 2


def test_center_is_reached_only_through_the_tls_proxy_it_trusts(
    compose: dict[str, Any], site: CitywatchConfig
) -> None:
    """The center publishes no port; Caddy proxies to its --port (= center.port) and has the
    one address center.trusted_proxies names."""
    center, caddy = compose["services"]["center"], compose["services"]["caddy"]
    assert "ports" not in center
    port = int(option(center["command"], "--port"))
    assert port == site.center.port
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert f"reverse_proxy center:{port}" in caddyfile and "\ttls /etc/caddy/tls/" in caddyfile
    proxy = caddy["networks"]["front"]["ipv4_address"]
    assert [str(a) for a in site.center.trusted_proxies] == [proxy]


def test_timescaledb_preloads_the_extension_and_takes_only_tls_logins(
    compose: dict[str, Any],
) -> None:
    """shared_preload_libraries=timescaledb and ssl=on on the command line; pg_hba.conf lets
    the network in only over hostssl with SCRAM."""
    command = compose["services"]["timescaledb"]["command"]
    assert "shared_preload_libraries=timescaledb" in command and "ssl=on" in command
    rules = [line.split() for line in (DEPLOY / "postgres" / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]  # fmt: skip
    assert all(r[0] in ("local", "hostssl") and r[-1] in ("peer", "scram-sha-256") for r in rules)


def test_each_service_gets_the_secrets_its_config_references(
    compose: dict[str, Any], site: CitywatchConfig
) -> None:
    """The secret:NAME each process resolves is mounted into it, from ./secrets/NAME."""
    services = citywatch_services(compose)
    database = site.services.database.password or ""
    needs = {
        "migrate": {database},
        "worker": {database},
        "bridge-1": {site.services.mqtt.bridge.password},
        "center": {database, site.center.url_signing_key}
        | {u.token for u in site.center.users if u.token},
    }
    for name, refs in needs.items():
        assert {secret_name(r) for r in refs} <= set(services[name]["secrets"]), name
    for name, secret in compose["secrets"].items():
        assert secret["file"] == f"./secrets/{name}"


def test_files_the_compose_file_mounts_from_deploy_exist(compose: dict[str, Any]) -> None:
    """Every bind mount outside the generated folders names a file or folder in deploy/."""
    for name, service in compose["services"].items():
        for source, _ in mounts(service):
            if not source.startswith(GENERATED):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"


# -- Kubernetes ------------------------------------------------------------------------------
def k8s_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, container) of every citywatch container in deploy/k8s/."""
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in YAML(typ="safe").load_all(path.read_text()):
            spec = (doc or {}).get("spec", {})
            pod = spec.get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                if container["image"].startswith("citywatch/"):
                    yield doc["metadata"]["name"], container


def test_every_citywatch_command_in_the_k8s_manifests_parses() -> None:
    """The manifests' args parse against the real CLI (a bridge's $(POD_NAME) as a pod name),
    and their probes ask the --metrics-port of the command."""
    kustomization = YAML(typ="safe").load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    manifests = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    root = typer.main.get_command(app)
    seen = set()
    for name, container in k8s_containers():
        args = [a.replace("$(POD_NAME)", "bridge-0") for a in container["args"]]
        seen.add(name)
        parse_command_line(root, name, args)
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in container:
                get = container[probe]["httpGet"]
                assert str(get["port"]) == option(args, "--metrics-port"), name
                assert get["path"] in ("/healthz", "/readyz"), name
    assert seen == {"citywatch-migrate", "bridge", "worker", "center"}


@pytest.mark.service
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders kustomizations")
def test_k8s_kustomization_renders() -> None:
    """`kubectl kustomize deploy/k8s` renders without a cluster, with the image tags set."""
    run = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "image: citywatch/stream:0.1.0" in run.stdout
    assert "image: citywatch/center:0.1.0" in run.stdout


# -- the image build file ------------------------------------------------------------------------
def test_dockerfile_installs_what_setup_installs() -> None:
    """The images together install setup.sh's pip extras and Debian packages, less the ones
    named above with why; each image only its tier's extras; the console libraries too."""
    setup = (REPO / "scripts" / "setup.sh").read_text()
    default = re.search(r'EXTRAS="\$\{CITYWATCH_EXTRAS:-([^}]+)\}"', setup)
    assert default is not None
    setup_extras = set(default.group(1).split(",")) | set(
        re.findall(r'EXTRAS="\$EXTRAS,([\w-]+)"', setup)
    )
    stages = dockerfile_stages()
    image_extras: set[str] = set()
    for target, wanted in TARGET_EXTRAS.items():
        found = {
            e
            for group in re.findall(r'pip install -e "\.\[([\w,-]+)\]"', stages[target])
            for e in group.split(",")
        }
        assert found == wanted, target
        image_extras |= found
    assert setup_extras - image_extras == set(NOT_IN_IMAGES_EXTRAS)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert image_extras <= set(extras)
    assert not any(re.match(r"(faust|psycopg)", dep) for dep in extras["edge"])
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert apt_packages(setup) - apt_packages(dockerfile) == set(NOT_IN_IMAGES_DEBIAN)
    for pin in re.findall(r"torch(?:vision)?==[\d.]+", " ".join(extras["vision"])):
        assert pin in stages["edge-vision"]
    assert "scripts/vendor_console.sh" in setup and "bash scripts/vendor_console.sh" in dockerfile
    for folder in pyproject["tool"]["setuptools"]["package-dir"].values():
        assert re.search(rf"^COPY {folder} {folder}$", dockerfile, flags=re.M), folder


# -- first start, for real -----------------------------------------------------------------------
def handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> None:
    """A TLS handshake between two contexts in memory; raises what verification raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname=host)
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    pending = {tls_client, tls_server}
    for _ in range(20):
        for side in list(pending):
            try:
                side.do_handshake()
                pending.discard(side)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not pending:
            return
    raise AssertionError(f"handshake with {host} did not finish")


def server_context(
    cert: Path, key: Path | None = None, client_ca: Path | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, site: CitywatchConfig) -> Path:
    """A copy of deploy/ after `prepare.sh` ran in it (the compose folder)."""
    if shutil.which("openssl") is None:
        pytest.skip("prepare.sh needs openssl")
    root = tmp_path_factory.mktemp("deploy-copy")
    shutil.copytree(DEPLOY, root / "deploy")
    prepare(root, site, "gw-nanhu-sensors")
    return root / "deploy" / "compose"


def prepare(root: Path, site: CitywatchConfig, *gateways: str) -> None:
    """Run deploy/scripts/prepare.sh in ``root`` with the example config's broker name."""
    mqtt_host = urlsplit(site.services.mqtt.url).hostname or ""
    run = subprocess.run(
        ["bash", "deploy/scripts/prepare.sh", "cw.example.org", mqtt_host, *gateways],
        cwd=root, env={"PATH": "/usr/bin:/bin", "CITYWATCH": str(REPO / ".venv/bin/citywatch")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.service
def test_prepare_makes_every_file_compose_mounts_and_the_certificates_verify(
    prepared: Path, compose: dict[str, Any], site: CitywatchConfig
) -> None:
    """prepare.sh (certificates, `citywatch broker export`, secrets, .env) leaves every mount
    and secret in place; the paths the config and the exported Mosquitto config read exist
    through the mounts; each server certificate verifies for its compose host name with
    citywatch's client context, Kafka's with the stream tier's client certificate."""
    here = prepared
    mqtt_host = urlsplit(site.services.mqtt.url).hostname or ""
    services = compose["services"]
    for name, service in services.items():
        for source, _ in mounts(service):
            assert (here / source).exists(), f"{name}: {source}"
    for secret in compose["secrets"].values():
        assert (here / secret["file"]).stat().st_size > 0
    assert re.search(r"^KAFKA_CLUSTER_ID=[\w-]{22}$", (here / ".env").read_text(), flags=re.M)
    exported = (here / "mosquitto" / "mosquitto-citywatch.conf").read_text()
    for path in re.findall(r"^\w+ (/etc/mosquitto/\S+)$", exported, flags=re.M):
        assert host_path(services["mosquitto"], path, here).is_file(), path
    kafka, mqtt, db = site.services.kafka, site.services.mqtt, site.services.database
    worker = services["worker"]
    files = {
        p: host_path(worker, p, here)
        for p in (mqtt.ca_file, kafka.ca_file, kafka.cert_file, kafka.key_file, db.sslrootcert)
        if p
    }
    assert all(f.is_file() for f in files.values()), files
    ca = str(files[kafka.ca_file or ""])
    tls = here / "tls"
    plain = client_context(ca)
    handshake(
        server_context(tls / "mosquitto/server.crt", tls / "mosquitto/server.key"),
        plain,
        "mosquitto",
    )
    handshake(
        server_context(tls / "mosquitto/server.crt", tls / "mosquitto/server.key"), plain, mqtt_host
    )
    handshake(
        server_context(tls / "timescaledb/server.crt", tls / "timescaledb/server.key"),
        plain,
        "timescaledb",
    )
    handshake(
        server_context(tls / "center/server.crt", tls / "center/server.key"),
        plain,
        "cw.example.org",
    )
    mutual = client_context(ca, str(files[kafka.cert_file or ""]), str(files[kafka.key_file or ""]))
    for n in (1, 2, 3):
        handshake(
            server_context(tls / f"kafka-{n}/server.pem", client_ca=tls / f"kafka-{n}/ca.crt"),
            mutual,
            f"kafka-{n}",
        )
    gateway = tls / "gateways" / "gw-nanhu-sensors"
    device = client_context(
        str(gateway / "ca.crt"), str(gateway / "client.crt"), str(gateway / "client.key")
    )
    handshake(
        server_context(
            tls / "mosquitto/server.crt", tls / "mosquitto/server.key", tls / "mosquitto/ca.crt"
        ),
        device,
        mqtt_host,
    )


MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.mark.service
@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="setup.sh installs Debian's mosquitto")
def test_mosquitto_runs_the_deploy_config_with_the_exported_accounts(
    prepared: Path, compose: dict[str, Any], site: CitywatchConfig, tmp_path: Path
) -> None:
    """A real Mosquitto takes deploy/mosquitto/mosquitto.conf with the exported listeners,
    passwd and acl and the prepared certificates (container paths mapped to the host, ports
    to free ones): its TLS listener answers for the broker's name, and the certificate
    listener takes a gateway's client certificate."""
    service = compose["services"]["mosquitto"]
    ports = {8883: pick_free_port(), 8884: pick_free_port()}

    def on_host(text: str) -> str:
        text = re.sub(r"(/(?:etc|mosquitto)/\S+)", lambda m: on_host_path(m.group(1)), text)
        return re.sub(
            r"^listener (\d+)$",
            lambda m: f"listener {ports[int(m.group(1))]} 127.0.0.1",
            text,
            flags=re.M,
        )

    def on_host_path(path: str) -> str:
        return str(container_file(path)) + ("/" if path.endswith("/") else "")

    def container_file(path: str) -> Path:
        if path.startswith("/mosquitto/data"):
            return tmp_path / "data" / path.removeprefix("/mosquitto/data").lstrip("/")
        return host_path(service, path, prepared)

    (tmp_path / "data").mkdir()
    included = tmp_path / "citywatch"
    included.mkdir()
    exported = (prepared / "mosquitto" / "mosquitto-citywatch.conf").read_text()
    (included / "mosquitto-citywatch.conf").write_text(on_host(exported))
    main = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    main = on_host(main).replace(str(container_file("/etc/mosquitto/citywatch")), str(included))
    (tmp_path / "mosquitto.conf").write_text("user root\n" + main)  # the test runs as root
    broker = subprocess.Popen(
        [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        host = urlsplit(site.services.mqtt.url).hostname or ""
        tls, gateway = prepared / "tls", prepared / "tls" / "gateways" / "gw-nanhu-sensors"
        plain = client_context(str(tls / "clients" / "ca.crt"))
        device = client_context(
            str(gateway / "ca.crt"), str(gateway / "client.crt"), str(gateway / "client.key")
        )
        for port, context in ((ports[8883], plain), (ports[8884], device)):
            deadline = time.monotonic() + 10
            while True:
                assert broker.poll() is None, broker.communicate()[0]
                try:
                    with (
                        socket.create_connection((LOOPBACK, port), timeout=2) as raw,
                        context.wrap_socket(raw, server_hostname=host) as wrapped,
                    ):
                        wrapped.sendall(MQTT_CONNECT_ANONYMOUS)
                        # a CONNACK (0x20): the broker read the packet after the handshake
                        assert wrapped.recv(1)[:1] == b"\x20"
                    break
                except ConnectionRefusedError:
                    assert time.monotonic() < deadline, f"nothing listens on {port}"
                    time.sleep(0.1)
    finally:
        broker.terminate()
        broker.wait(timeout=10)


MQTT_CONNECT_ANONYMOUS = bytes.fromhex("100c00044d5154540402003c0000")
"""An MQTT 3.1.1 CONNECT with an empty client id and no login: answered by a CONNACK
(refused, as allow_anonymous is false) once the TLS handshake went through."""


@pytest.mark.service
def test_prepare_again_keeps_the_ca_secrets_and_env_and_adds_a_gateway(
    prepared: Path, site: CitywatchConfig
) -> None:
    """Adding a district runs prepare.sh again: the CA, every secret, every server
    certificate and .env stay as they were (running services keep trusting each other); the
    new gateway gets a client certificate of the same CA, and the broker files are rewritten."""
    kept = [prepared / ".env", prepared / "tls/ca/ca.crt", prepared / "tls/kafka-1/server.pem"]
    kept += sorted((prepared / "secrets").iterdir())
    before = {path: path.read_bytes() for path in kept}
    prepare(prepared.parents[1], site, "gw-nanhu-sensors", "gw-nanhu-cam")
    assert {path: path.read_bytes() for path in kept} == before
    gateway = prepared / "tls" / "gateways" / "gw-nanhu-cam"
    device = client_context(
        str(gateway / "ca.crt"), str(gateway / "client.crt"), str(gateway / "client.key")
    )
    tls = prepared / "tls"
    server = server_context(
        tls / "mosquitto/server.crt", tls / "mosquitto/server.key", tls / "ca/ca.crt"
    )
    handshake(server, device, urlsplit(site.services.mqtt.url).hostname or "")
