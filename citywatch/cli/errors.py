"""The CLI's expected errors, each turned into one line that says what is wrong and what to do.

Commands raise the library's own exceptions and do not catch them one by one: this table is
the one place that decides which are expected (an operator's mistake, a service that is not
running, a file that is not there: one line on stderr and a non-zero exit) and which are bugs
(a traceback). The global ``--debug`` flag (or ``CITYWATCH_DEBUG=1``) shows the traceback of
every error, expected or not.

Exit codes: 2 for what the operator gave (config, files, options), 1 for the environment (a
service down, a port taken).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

__all__ = [
    "DEBUG_KEY",
    "EXPECTED",
    "CliGroup",
    "Expected",
    "PortInUse",
    "Terminated",
    "explain",
    "raise_on_sigterm",
]

DEBUG_KEY = "citywatch.debug"
"""Where the root callback leaves ``--debug`` in the click context's shared ``meta``."""

err = Console(stderr=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that the
    ``finally`` blocks of a long-running command stop what it started."""


def raise_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (Python's default for it
    ends the process at once, leaving every child running)."""

    def terminated(signum: int, frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, terminated)


class PortInUse(OSError):
    """A server's port is taken: found before the server says it is ready, not after."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _database(exc: BaseException) -> str:
    reason = _first_line(exc).removeprefix("connection failed: ")
    return (
        f"cannot reach the database ({reason}): start the stack with `citywatch stack up`,"
        " or fix services.database.url (center serve: --database-url)"
    )


def _kafka(exc: BaseException) -> str:
    return (
        f"cannot reach Kafka ({_first_line(exc).removeprefix(type(exc).__name__ + ': ')}):"
        " start the stack with `citywatch stack up`,"
        " or fix services.kafka.bootstrap"
    )


def _missing_file(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    return f"{exc.filename}: no such file or directory (check the path)"


def _unreadable_file(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    return (
        f"{exc.filename}: {exc.strerror or 'cannot be used'} (check the path and its permissions)"
    )


def _truth_file(exc: BaseException) -> str:
    return (
        f"{_first_line(exc)} (a truth file holds one JSON event per line, as"
        " `citywatch sim camera` writes them to *.truth.jsonl)"
    )


def _secret(exc: BaseException) -> str:
    return (
        f"{_first_line(exc)} (`citywatch stack up` writes the stack's secret: files; for"
        " env: and file: references set the variable or create the file)"
    )


def _config(exc: BaseException) -> str:
    # Each problem is already one line with its file:line; a config error is one per problem.
    return "\n".join(str(p) for p in getattr(exc, "problems", ())) or _first_line(exc)


@dataclass(frozen=True)
class Expected:
    """An exception class (by module and name, so nothing is imported just to be matched),
    the exit code, and how its one line reads."""

    module: str
    name: str
    code: int
    explain: Callable[[BaseException], str] = _first_line
    applies: Callable[[BaseException], bool] = lambda exc: True


EXPECTED: tuple[Expected, ...] = (
    # More specific first: WeightsNotFound is both a DetectorError and a FileNotFoundError.
    Expected("citywatch.config.loader", "ConfigError", 2, _config),
    Expected("citywatch.stack.endpoints", "EndpointError", 1),
    Expected("citywatch.config.secrets", "SecretError", 2, _secret),
    Expected("citywatch.stack.errors", "StackError", 1, str),
    Expected("citywatch.models.detector_factory", "DetectorError", 2),
    Expected("citywatch.hardware.camera.video_source", "VideoSourceError", 2),
    Expected("citywatch.edge.camera.evaluation.truth_file", "TruthFileError", 2, _truth_file),
    Expected("citywatch.edge.camera.evaluation.detection_file", "DetectionFileError", 2),
    Expected("citywatch.hardware.camera.street.scenario", "ScenarioError", 2, str),
    Expected("citywatch.cli.errors", "PortInUse", 1),
    Expected("citywatch.models.train_street", "OutputExists", 2),
    Expected("citywatch.models.dataset_export", "DatasetError", 2),
    Expected("citywatch.models.labelled_dir", "LabelledError", 2),
    Expected("citywatch.config.model_checks", "ModelUnreadable", 2),
    Expected("psycopg", "OperationalError", 1, _database),
    Expected("aiokafka.errors", "KafkaConnectionError", 1, _kafka),
    Expected(
        "builtins",
        "FileNotFoundError",
        2,
        _missing_file,
        lambda e: bool(getattr(e, "filename", None)),
    ),
    Expected(
        "builtins",
        "PermissionError",
        2,
        _unreadable_file,
        lambda e: bool(getattr(e, "filename", None)),
    ),
    Expected(
        "builtins",
        "IsADirectoryError",
        2,
        _unreadable_file,
        lambda e: bool(getattr(e, "filename", None)),
    ),
)


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code for an expected error; None for a bug (show the traceback).

    A class whose module was never imported cannot have raised, so it is not imported here.
    """
    for entry in EXPECTED:
        module = sys.modules.get(entry.module)
        cls: Any = getattr(module, entry.name, None) if module else None
        if isinstance(cls, type) and isinstance(exc, cls) and entry.applies(exc):
            return entry.explain(exc), entry.code
    return None


class CliGroup(TyperGroup):
    """The root command: runs the subcommand and turns an expected error into its line."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click.Context
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:  # a wrong or missing option: one line too
            if ctx.meta.get(DEBUG_KEY):
                raise
            where = getattr(exc.ctx, "command_path", None) or ctx.command_path
            line = f"{exc.format_message()} (see `{where} --help`)"
            err.print(Text.assemble(("✗ ", "red"), line), highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except KeyboardInterrupt as exc:
            if ctx.meta.get(DEBUG_KEY):
                raise
            terminated = isinstance(exc, Terminated)
            err.print(f"[red]✗[/] {'stopped by SIGTERM' if terminated else 'interrupted'}")
            raise typer.Exit(128 + (signal.SIGTERM if terminated else signal.SIGINT)) from None
        except Exception as exc:
            found = explain(exc)
            if found is None or ctx.meta.get(DEBUG_KEY):
                raise
            message, code = found
            for line in message.splitlines():
                err.print(Text.assemble(("✗ ", "red"), line), highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None
