"""Start, report and stop citywatch's single-machine stack: Mosquitto, Tansu and PostgreSQL.

`EmbeddedStack(data_dir, accounts).up()` starts whatever is not already running in
`data_dir`, on free loopback ports, and returns only once every service has accepted a real
client connection (an MQTT 5 login, a Kafka Metadata request, a PostgreSQL `SELECT 1`). The
services run detached and outlive the calling process; `status()` and `down()`, from this or
any later process, find them through `<data_dir>/stack.json`. The CLI (`citywatch stack
up|status|down`) and the integration-test fixture are thin wrappers around this class.
Who the services run as is decided in `service_users`; what `status()` reports is `info`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from citywatch.stack import binaries, processes, state
from citywatch.stack.accounts import (
    MqttAccount,
    accounts_fingerprint,
    check_unique,
    health_account,
)
from citywatch.stack.amqtt_broker import AmqttService
from citywatch.stack.errors import StackError
from citywatch.stack.info import SERVICE_NAMES, ServiceInfo, StackInfo, stack_info
from citywatch.stack.mosquitto import DEFAULT_MAX_QUEUED, MosquittoService
from citywatch.stack.ports import LOOPBACK, choose_port, pick_free_port
from citywatch.stack.postgres import PostgresService
from citywatch.stack.processes import ProcessRecord
from citywatch.stack.service import (
    ProbeFailed,
    Service,
    failed_to_bind,
    log_size,
    read_log_since,
)
from citywatch.stack.service_users import ServiceUsers, prepare_data_dir
from citywatch.stack.tansu import TansuService

__all__ = [
    "EmbeddedStack",
    "MqttAccount",
    "ServiceInfo",
    "StackError",
    "StackInfo",
    "default_data_dir",
]

log = logging.getLogger(__name__)

_BIND_ATTEMPTS = 3
_POLL_S = 0.05
_RELOAD_TIMEOUT_S = 10.0

Progress = Callable[[str], None]


def default_data_dir() -> Path:
    """Where `citywatch stack` keeps its data unless told otherwise.

    `$CITYWATCH_STACK_DIR` wins. As root the default is /var/lib/citywatch/stack, because
    PostgreSQL and Mosquitto then run as their own system users, who cannot enter /root.
    Otherwise it is `$XDG_STATE_HOME/citywatch/stack` (~/.local/state/citywatch/stack).
    """
    override = os.environ.get("CITYWATCH_STACK_DIR")
    if override:
        return Path(override).expanduser()
    if processes.running_as_root():
        return Path("/var/lib/citywatch/stack")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "citywatch" / "stack"


@dataclass
class _Launch:
    """A service `up` is bringing up, or checking, until it accepts a connection."""

    service: Service
    port: int
    process: ProcessRecord
    log_offset: int
    spawned: bool  # False for a service that was already running
    attempts: int = 1


class EmbeddedStack:
    """The local stack whose files, logs and state live in `data_dir`.

    `accounts` are the MQTT logins the broker accepts after `up()` (besides the launcher's
    own `citywatch-health` account, which may connect but not publish or subscribe);
    `mqtt_max_queued` the messages Mosquitto queues per client before it drops.
    """

    def __init__(
        self,
        data_dir: Path,
        accounts: Sequence[MqttAccount] = (),
        mqtt_max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self._accounts = self._validated(accounts)
        self._mqtt_max_queued = mqtt_max_queued

    # -- public API -------------------------------------------------------------------------

    def up(self, timeout_s: float = 60.0, progress: Progress | None = None) -> StackInfo:
        """Start what is not running and return once every service accepts connections.

        Idempotent: services already running are kept (same pids) and only checked. Raises
        StackError naming the service, with the tail of its log, when one cannot start within
        `timeout_s`; the services this call started are then stopped again.
        """
        info = self._up(timeout_s, progress, only_after_a_crash=False)
        assert info is not None
        return info

    def restart_crashed(self, timeout_s: float = 60.0) -> StackInfo | None:
        """`up()`, but only when a service crashed (see `crashed()`), decided under the
        state lock: a `down()` running meanwhile is not mistaken for a crash and undone."""
        return self._up(timeout_s, None, only_after_a_crash=True)

    def _up(
        self, timeout_s: float, progress: Progress | None, *, only_after_a_crash: bool
    ) -> StackInfo | None:
        deadline = time.monotonic() + timeout_s
        notify = _notifier(progress)
        users = ServiceUsers.for_this_process()
        prepare_data_dir(self.data_dir, users)
        with state.locked(self.data_dir):
            st = state.load(self.data_dir) or state.StackState()
            if only_after_a_crash and not _crashed(st):
                return None
            alive = {name: self._alive(st, name) for name in SERVICE_NAMES}
            mqtt = self._mqtt_service(st, users, alive["mqtt"])
            services = self._services(st, users, mqtt)
            launches: dict[str, _Launch] = {}
            try:
                self._apply_accounts(st, mqtt, alive, deadline)
                for name in SERVICE_NAMES:
                    launches[name] = self._launch(st, name, services[name], alive[name], notify)
                self._wait_until_ready(st, launches, deadline, timeout_s, notify)
            except BaseException:
                self._abandon(st, launches)
                raise
            state.save(self.data_dir, st)
            info = stack_info(self.data_dir, st)
        notify(
            f"stack up: {info.mqtt_url}, kafka {info.kafka_bootstrap}, postgres port "
            f"{info.service('postgres').port}"
        )
        return info

    def status(self) -> StackInfo | None:
        """What runs in `data_dir` now, or None when no stack was ever started there."""
        if not (self.data_dir / state.STATE_FILE).exists():
            return None
        st = state.load(self.data_dir)
        return stack_info(self.data_dir, st) if st is not None else None

    def crashed(self) -> list[str]:
        """The services started here and not stopped by `down` whose process is gone."""
        if not (self.data_dir / state.STATE_FILE).exists():
            return []
        st = state.load(self.data_dir)
        return [] if st is None else _crashed(st)

    def down(self, timeout_s: float = 20.0) -> None:
        """Stop every service and make sure no process of the stack is left.

        Each service gets its polite signal (SIGINT, a fast shutdown, for PostgreSQL; SIGTERM
        for the brokers) and is SIGKILLed when it outlives its grace period or `timeout_s`.
        Only processes whose start time and command line match the state file are signalled.
        Idempotent: with nothing running it does nothing.
        """
        if not (self.data_dir / state.STATE_FILE).exists():
            return
        with state.locked(self.data_dir):
            st = state.load(self.data_dir)
            if st is None:
                return
            targets = {
                name: (svc.process, _STOP_SIGNALS[name], min(_GRACE_S[name], timeout_s))
                for name, svc in st.services.items()
                if svc.process is not None
            }
            killed = processes.stop_all(targets, timeout_s)
            survivors = [
                name for name, (record, _s, _g) in targets.items() if not processes.is_gone(record)
            ]
            if survivors:
                raise StackError(f"could not stop {', '.join(survivors)}; see `ps` for their pids")
            for name, svc in st.services.items():
                if svc.process is not None:
                    how = "killed" if killed.get(name) else "stopped"
                    log.info("%s (pid %s) %s", name, svc.process.pid, how)
                svc.process = None
            state.save(self.data_dir, st)

    def update_accounts(self, accounts: Sequence[MqttAccount]) -> None:
        """Replace the broker's accounts and ACL; a running Mosquitto reloads them (SIGHUP).

        Returns once the running broker enforces the new files. With no stack running the
        accounts are kept for the next `up()`.
        """
        self._accounts = self._validated(accounts)
        if not (self.data_dir / state.STATE_FILE).exists():
            return
        users = ServiceUsers.for_this_process()
        deadline = time.monotonic() + _RELOAD_TIMEOUT_S
        notify = _notifier(None)
        with state.locked(self.data_dir):
            st = state.load(self.data_dir)
            if st is None:
                return
            was_running = self._alive(st, "mqtt")
            alive = {"mqtt": was_running}
            mqtt = self._mqtt_service(st, users, was_running)
            launches: dict[str, _Launch] = {}
            try:
                self._apply_accounts(st, mqtt, alive, deadline)
                if was_running:
                    # Mosquitto reloaded in place; the amqtt fallback was stopped to restart.
                    launches["mqtt"] = self._launch(st, "mqtt", mqtt, alive["mqtt"], notify)
                    self._wait_until_ready(st, launches, deadline, _RELOAD_TIMEOUT_S, notify)
            except BaseException:
                self._abandon(st, launches)
                raise
            state.save(self.data_dir, st)

    # -- preparing ------------------------------------------------------------------------

    @staticmethod
    def _validated(accounts: Iterable[MqttAccount]) -> tuple[MqttAccount, ...]:
        result = tuple(accounts)
        try:
            check_unique(result)
        except ValueError as exc:
            raise StackError(str(exc)) from exc
        return result

    def _alive(self, st: state.StackState, name: str) -> bool:
        svc = st.services.get(name)
        if svc is None or svc.process is None:
            return False
        if processes.is_alive(svc.process):
            return True
        log.warning("%s (pid %s) is no longer running", name, svc.process.pid)
        # A crashed PostgreSQL leaves its backends, which hold the shared memory a new
        # postmaster refuses to start beside; they belong to the dead service's session.
        processes.kill_orphans(name, svc.process)
        svc.process = None
        return False

    def _mqtt_service(
        self, st: state.StackState, users: ServiceUsers, alive: bool
    ) -> MosquittoService | AmqttService:
        """The broker that runs (when alive), else the one this machine offers now."""
        recorded = st.services.get("mqtt")
        if alive and recorded is not None:
            broker = binaries.mqtt_broker_of_kind(recorded.backend)
        else:
            broker = binaries.choose_mqtt_broker()
        if broker.kind == "amqtt":
            return AmqttService(self.data_dir, broker.program, None, st.health_password)
        return MosquittoService(
            self.data_dir, broker.program, users.mqtt, st.health_password, self._mqtt_max_queued
        )

    def _services(
        self, st: state.StackState, users: ServiceUsers, mqtt: Service
    ) -> dict[str, Service]:
        pg = binaries.choose_postgres()
        return {
            "mqtt": mqtt,
            "kafka": TansuService(self.data_dir, binaries.find_tansu(), users.kafka),
            "postgres": PostgresService(self.data_dir, pg, users.postgres, st.postgres_password),
        }

    def _apply_accounts(
        self,
        st: state.StackState,
        mqtt: MosquittoService | AmqttService,
        alive: dict[str, bool],
        deadline: float,
    ) -> None:
        """Make the broker's files hold exactly this stack's accounts; reload a running broker.

        A broker about to start gets freshly written files. A running one is left alone when
        its accounts are unchanged; otherwise the health account gets a new password too, so
        the readiness probe that follows succeeds only once the broker has really reloaded.
        """
        fingerprint = accounts_fingerprint(self._accounts)
        if alive["mqtt"] and fingerprint == st.accounts_fingerprint:
            return
        if alive["mqtt"]:
            st.health_password = state.StackState().health_password
            mqtt.health_password = st.health_password
        mqtt.write_accounts((health_account(st.health_password), *self._accounts))
        st.accounts_fingerprint = fingerprint
        record = st.services["mqtt"].process if alive["mqtt"] else None
        if record is None:
            return
        if isinstance(mqtt, MosquittoService):
            log.info("MQTT accounts changed; reloading Mosquitto (pid %s)", record.pid)
            MosquittoService.reload(record.pid)
        else:
            log.info("MQTT accounts changed; restarting amqtt (it cannot reload)")
            remaining = max(deadline - time.monotonic(), 1.0)
            processes.stop_all({"mqtt": (record, mqtt.stop_signal, mqtt.stop_grace_s)}, remaining)
            alive["mqtt"] = False

    # -- starting -------------------------------------------------------------------------

    def _launch(
        self, st: state.StackState, name: str, service: Service, alive: bool, notify: Progress
    ) -> _Launch:
        """Spawn `service` unless it runs already; either way, return what to wait for."""
        recorded = st.services.get(name)
        if alive and recorded is not None and recorded.process is not None:
            notify(f"{name}: already running (pid {recorded.process.pid}), checking it")
            return _Launch(service, recorded.port, recorded.process, 0, spawned=False)
        if recorded is not None:
            notify(f"{name}: not running; starting it again")
        taken = {s.port for n, s in st.services.items() if n != name}
        port = choose_port(recorded.port if recorded else None, exclude=taken)
        return self._spawn(st, name, service, port, notify)

    def _spawn(
        self, st: state.StackState, name: str, service: Service, port: int, notify: Progress
    ) -> _Launch:
        notify(
            f"{name}: starting {type(service).__name__.removesuffix('Service')} "
            f"on {LOOPBACK}:{port}"
        )
        service.prepare(port)
        offset = log_size(service.log_path)
        argv = service.argv(port)
        try:
            record = processes.spawn(
                argv,
                log_path=service.log_path,
                marker=service.marker(port),
                user=service.run_as,
                cwd=self.data_dir,
            )
        except OSError as exc:
            who = f" as user '{service.run_as.name}'" if service.run_as else ""
            raise StackError(f"cannot start {name} ({argv[0]}){who}: {exc}") from exc
        st.services[name] = state.ServiceState(port=port, backend=_backend(service), process=record)
        return _Launch(service, port, record, offset, spawned=True)

    def _wait_until_ready(
        self,
        st: state.StackState,
        launches: dict[str, _Launch],
        deadline: float,
        timeout_s: float,
        notify: Progress,
    ) -> None:
        """Probe each service until it accepts a real client connection, or fail clearly."""
        pending = dict(launches)
        last_error: dict[str, str] = {}
        while pending:
            for name, launch in list(pending.items()):
                if not processes.is_alive(launch.process):
                    pending[name] = launches[name] = self._restart_or_fail(st, name, launch, notify)
                    continue
                try:
                    launch.service.probe(launch.port)
                except ProbeFailed as exc:
                    last_error[name] = str(exc)
                    continue
                del pending[name]
                st.services[name].version = launch.service.version()
                notify(
                    f"{name}: ready on {LOOPBACK}:{launch.port} "
                    f"(pid {launch.process.pid}, version {st.services[name].version})"
                )
            if not pending:
                return
            if time.monotonic() >= deadline:
                name, launch = next(iter(pending.items()))
                raise StackError(
                    f"{name} did not accept connections on {LOOPBACK}:{launch.port} within "
                    f"{timeout_s:g}s ({last_error.get(name, 'no answer')}). Last lines of "
                    f"{launch.service.log_path}:\n"
                    f"{read_log_since(launch.service.log_path, launch.log_offset)}"
                )
            time.sleep(_POLL_S)

    def _restart_or_fail(
        self, st: state.StackState, name: str, launch: _Launch, notify: Progress
    ) -> _Launch:
        """A service died while starting: retry on a new port if its port was taken."""
        tail = read_log_since(launch.service.log_path, launch.log_offset)
        code = processes.exit_code(launch.process)
        if launch.spawned and failed_to_bind(tail) and launch.attempts < _BIND_ATTEMPTS:
            taken = {s.port for s in st.services.values()}
            port = pick_free_port(exclude=taken)
            notify(f"{name}: port {launch.port} was taken meanwhile; retrying on {port}")
            retry = self._spawn(st, name, launch.service, port, notify)
            retry.attempts = launch.attempts + 1
            return retry
        st.services[name].process = None
        raise StackError(
            f"{name} exited while starting (exit code {code if code is not None else 'unknown'})."
            f" Last lines of {launch.service.log_path}:\n{tail}"
        )

    def _abandon(self, st: state.StackState, launches: dict[str, _Launch]) -> None:
        """After a failed start, stop what this call started and record that it is gone."""
        started = {
            name: (launch.process, launch.service.stop_signal, launch.service.stop_grace_s)
            for name, launch in launches.items()
            if launch.spawned
        }
        with contextlib.suppress(StackError):
            processes.stop_all(started, timeout_s=20.0)
        for name in started:
            st.services[name].process = None
        state.save(self.data_dir, st)


_STOP_SIGNALS = {
    "mqtt": MosquittoService.stop_signal,
    "kafka": TansuService.stop_signal,
    "postgres": PostgresService.stop_signal,
}
_GRACE_S = {
    "mqtt": MosquittoService.stop_grace_s,
    "kafka": TansuService.stop_grace_s,
    "postgres": PostgresService.stop_grace_s,
}


def _crashed(st: state.StackState) -> list[str]:
    """Services recorded as running (not stopped by `down`) whose process is gone."""
    return [
        name
        for name, svc in st.services.items()
        if svc.process is not None and not processes.is_alive(svc.process)
    ]


def _backend(service: Service) -> str:
    if isinstance(service, PostgresService):
        return service.binaries.source
    if isinstance(service, AmqttService):
        return "amqtt"
    if isinstance(service, TansuService):
        return "tansu"
    return "mosquitto"


def _notifier(progress: Progress | None) -> Progress:
    def notify(message: str) -> None:
        log.info("%s", message)
        if progress is not None:
            progress(message)

    return notify
