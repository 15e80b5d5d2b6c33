"""Spawning, recognising and stopping the stack's service processes.

Services are started detached (their own session) so they outlive the `citywatch stack up`
process; a later process finds them again through the pids in the state file. A pid alone is
not proof: it may have been reused. A `ProcessRecord` therefore also keeps the process's start
time and the program and a marker (a path or port) expected in its command line, and nothing
is signalled unless all of them still match.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from citywatch.stack.errors import StackError

log = logging.getLogger(__name__)

#: Children spawned by this process, so their exit status is collected (no zombies linger
#: while the launcher runs) and so a child that exited is not mistaken for a running one.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
#: Exit statuses of reaped children, for error messages about a service that died.
_EXIT_CODES: dict[int, int] = {}

_POLL_S = 0.02


@dataclass(frozen=True)
class ServiceUser:
    """The unprivileged account a service runs as when citywatch itself runs as root."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> ServiceUser | None:
        """The system user `name`, or None when it does not exist."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)

    def groups(self) -> list[int]:
        """The user's supplementary groups, so root's own are not inherited by the service."""
        return os.getgrouplist(self.name, self.gid)


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies one running service process, as stored in the state file."""

    pid: int
    start_ticks: int
    program: str  # basename of argv[0]
    marker: str  # a string that must appear in the command line (data path, port)

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "program": self.program,
            "marker": self.marker,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        return cls(
            pid=int(str(data["pid"])),
            start_ticks=int(str(data["start_ticks"])),
            program=str(data["program"]),
            marker=str(data["marker"]),
        )


def running_as_root() -> bool:
    return os.geteuid() == 0


def service_env(user: ServiceUser | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, predictable environment: the operator's PG*, KAFKA or LISTENER_URL variables
    must not change how a service of ours starts."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": user.home if user else os.environ.get("HOME", "/"),
    }
    for name in ("TZ", "RUST_LOG", "RUST_BACKTRACE"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    marker: str,
    user: ServiceUser | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ProcessRecord:
    """Start `argv` detached, output appended to `log_path`, as `user` when given."""
    if marker not in " ".join(argv):
        raise ValueError(f"marker {marker!r} does not occur in {argv!r}")
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else service_env(user),
            start_new_session=True,
            close_fds=True,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=user.groups() if user else None,
        )
    _CHILDREN[proc.pid] = proc
    _EXIT_CODES.pop(proc.pid, None)
    ticks = _start_ticks(proc.pid)
    log.debug("spawned pid %s: %s", proc.pid, " ".join(argv))
    return ProcessRecord(
        pid=proc.pid,
        start_ticks=ticks if ticks is not None else 0,
        program=Path(argv[0]).name,
        marker=marker,
    )


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22: starttime


def read_cmdline(pid: int) -> list[str]:
    """The process's argv, empty when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _reap(pid: int) -> None:
    """Collect the exit status of our own child, so it does not linger as a zombie."""
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _EXIT_CODES[pid] = proc.returncode
        del _CHILDREN[pid]


def is_alive(record: ProcessRecord) -> bool:
    """Whether `record`'s process still runs and is still the program we started."""
    _reap(record.pid)
    fields = _stat_fields(record.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    if record.start_ticks and int(fields[19]) != record.start_ticks:
        return False
    argv = read_cmdline(record.pid)
    # A script (the amqtt fallback) shows up as "python /path/to/script ...".
    programs = {Path(arg).name for arg in argv[:2]}
    return record.program in programs and record.marker in " ".join(argv)


def is_gone(record: ProcessRecord) -> bool:
    """Whether `record`'s process has fully exited (stricter than `not is_alive`).

    An exiting process loses its command line before it stops running; `down` waits for it
    to be gone (or a zombie: an exit status nobody collected yet) before it reports success.
    """
    _reap(record.pid)
    fields = _stat_fields(record.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return True
    return bool(record.start_ticks) and int(fields[19]) != record.start_ticks


def exit_code(record: ProcessRecord) -> int | None:
    """Exit status of a child of this process that has exited, else None."""
    _reap(record.pid)
    return _EXIT_CODES.get(record.pid)


def _session_members(record: ProcessRecord) -> list[int]:
    """Pids left in the session the service led (e.g. PostgreSQL backends after a SIGKILL).

    The service was started in a session of its own, whose id is its pid; Linux does not
    reuse a pid while a session still carries it, so every member descends from our service.
    Only call this for a record that was verified alive before it was stopped.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != record.pid:
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[3]) == record.pid:
                members.append(int(entry.name))
    return members


def stop_all(
    records: Mapping[str, tuple[ProcessRecord, signal.Signals, float]],
    timeout_s: float,
) -> dict[str, bool]:
    """Signal each service, wait for all, SIGKILL what outlives its grace period.

    `records` maps a service name to (record, polite signal, grace seconds). Returns, per
    service, whether it had to be killed. Processes that are not ours are never signalled.
    """
    deadline = time.monotonic() + timeout_s
    kill_at: dict[str, float] = {}
    for name, (record, sig, grace_s) in records.items():
        if is_alive(record):
            log.info("stopping %s (pid %s) with %s", name, record.pid, sig.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, sig)
            kill_at[name] = min(deadline, time.monotonic() + grace_s)
    killed: dict[str, bool] = {name: False for name in records}
    pending = dict(kill_at)
    while pending:
        now = time.monotonic()
        for name in list(pending):
            record = records[name][0]
            if is_gone(record):
                del pending[name]
            elif now >= pending[name] and not killed[name]:
                log.warning("%s (pid %s) did not stop in time; sending SIGKILL", name, record.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
                killed[name] = True
                pending[name] = now + 5.0
            elif now >= pending[name]:
                raise StackError(
                    f"{name} (pid {record.pid}) survived SIGKILL; check it with "
                    f"`ps -o pid,stat,cmd -p {record.pid}`"
                )
        time.sleep(_POLL_S)
    for name in kill_at:
        _kill_session_leftovers(name, records[name][0])
    return killed


def _kill_session_leftovers(name: str, record: ProcessRecord) -> None:
    """SIGKILL what is left in a stopped service's session, and wait until it is gone."""
    leftovers = _session_members(record)
    for pid in leftovers:
        log.warning("killing leftover %s process %s", name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while leftovers and _session_members(record) and time.monotonic() < deadline:
        time.sleep(_POLL_S)


def kill_orphans(name: str, record: ProcessRecord) -> None:
    """SIGKILL what is left in the session of a service whose leader died (a PostgreSQL
    postmaster killed with SIGKILL leaves its backends). Only while the leader's pid is
    free or held by its zombie: Linux does not give a pid to a new process while a session
    still carries it, so the members found are the dead service's, never another program's."""
    own = _CHILDREN.get(record.pid)
    if own is not None and not is_alive(record):
        # A leader SIGKILLed a moment ago may still be dying (its command line already
        # gone, its pid still running): let it finish before its session is judged.
        with contextlib.suppress(subprocess.TimeoutExpired):
            own.wait(5.0)
    _reap(record.pid)
    fields = _stat_fields(record.pid)
    if fields is not None and fields[0] not in ("Z", "X"):
        return  # the pid runs a process again: its session is not ours to judge
    _kill_session_leftovers(name, record)


def unreachable_ancestor(path: Path, user: ServiceUser) -> Path | None:
    """The first directory on the way to `path` that `user` may not enter, or None.

    A service running as another user needs search (x) permission on every ancestor of its
    data; a data directory under /root or pytest's 0700 temp root is out of its reach.
    """
    groups = set(user.groups())
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return None  # the rest will be created by us, with modes we choose
        if st.st_uid == user.uid:
            allowed = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            allowed = bool(st.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(st.st_mode & stat.S_IXOTH)
        if not allowed:
            return directory
    return None
