"""Load YAML config files into the config tree, mapping every error to file:line:column.

A file may ``include:`` others (relative paths): mappings merge, lists concatenate, and a
scalar set twice is an error naming both places. While merging, the loader records where
every value came from, so a validation error deep in an included file still names its line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from citywatch.config.checks import run_checks
from citywatch.config.model_checks import model_problems
from citywatch.config.problem_wording import field_names_at, nearest, reword
from citywatch.config.tree import CitywatchConfig

Loc = tuple[str | int, ...]
Where = tuple[Path, int, int]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config, where it is, and what to do about it."""

    file: Path
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists every error found, each located."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_config(path: Path | str) -> CitywatchConfig:
    """Read, merge, validate and cross-check one site config, or raise :class:`ConfigError`."""
    path = Path(path)
    data, locations, problems = _read_merged(path)
    if problems:
        raise ConfigError(problems)
    base_dir = path.parent
    try:
        config = CitywatchConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_once(_from_validation(exc, data, locations, path))) from None
    issues = run_checks(config)
    if issues:
        raise ConfigError(
            _once([_locate(path, data, locations, issue.path, issue.message) for issue in issues])
        )
    return config


def config_files(path: Path | str) -> list[Path]:
    """The file and every file it includes: what a hot-reloading agent watches."""
    path = Path(path)
    _, locations, _ = _read_merged(path)
    return sorted({path.resolve()} | {where[0].resolve() for where in locations.values()})


def check_files(paths: Iterable[Path]) -> list[ConfigProblem]:
    """Every problem in every file (empty when all are valid), for ``citywatch config check``."""
    problems: list[ConfigProblem] = []
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            problems += exc.problems
        else:  # the models each camera names, against its rules (reads the model files)
            data, locations, _ = _read_merged(path)
            problems += model_problems(config, partial(_locate, path, data, locations))
    return problems


def _read_merged(path: Path) -> tuple[dict[str, Any], dict[Loc, Where], list[ConfigProblem]]:
    data: dict[str, Any] = {}
    locations: dict[Loc, Where] = {}
    problems: list[ConfigProblem] = []
    _absorb_file(path, data, locations, problems, seen=())
    return data, locations, problems


def _absorb_file(
    path: Path,
    data: dict[str, Any],
    locations: dict[Loc, Where],
    problems: list[ConfigProblem],
    seen: tuple[Path, ...],
) -> None:
    resolved = path.resolve()
    if resolved in seen:
        problems.append(
            ConfigProblem(
                path,
                None,
                None,
                "include",
                "include cycle: " + " → ".join(map(str, (*seen, resolved))),
            )
        )
        return
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(ConfigProblem(path, None, None, "", f"cannot read: {exc.strerror}"))
        return
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        # Point at where the broken construct starts (an unclosed bracket, say): that is
        # where the operator has to look; the parser notices only at a later line.
        mark = exc.context_mark or exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = str(exc.problem or "invalid YAML")
        if exc.context and exc.problem_mark:
            message += f" ({exc.context}, noticed at line {exc.problem_mark.line + 1})"
        problems.append(ConfigProblem(path, line, column, "(yaml syntax)", message))
        return
    if tree is None:
        return
    if not isinstance(tree, CommentedMap):
        problems.append(ConfigProblem(path, 1, 1, "", "a config file is a mapping of sections"))
        return
    includes = tree.pop("include", None) if "include" in tree else CommentedSeq()
    _merge_map(data, tree, path, (), locations, problems)
    if not isinstance(includes, CommentedSeq):
        problems.append(
            ConfigProblem(path, None, None, "include", "include is a list of file paths")
        )
        return
    for index, name in enumerate(includes):
        if not isinstance(name, str):
            line, column = includes.lc.item(index)
            problems.append(
                ConfigProblem(
                    path, line + 1, column + 1, f"include[{index}]", "an include is a file path"
                )
            )
            continue
        _absorb_file(path.parent / name, data, locations, problems, (*seen, resolved))


def _merge_map(
    target: dict[str, Any],
    source: CommentedMap,
    file: Path,
    loc: Loc,
    locations: dict[Loc, Where],
    problems: list[ConfigProblem],
) -> None:
    for key, value in source.items():
        line, column = source.lc.key(key)
        key_loc = (*loc, key)
        if key not in target:
            target[key] = _plain(value, file, key_loc, locations)
            locations[key_loc] = (file, line + 1, column + 1)
        elif isinstance(target[key], dict) and isinstance(value, CommentedMap):
            _merge_map(target[key], value, file, key_loc, locations, problems)
        elif isinstance(target[key], list) and isinstance(value, CommentedSeq):
            offset = len(target[key])
            for index, item in enumerate(value):
                item_loc = (*key_loc, offset + index)
                item_line, item_column = value.lc.item(index)
                target[key].append(_plain(item, file, item_loc, locations))
                locations[item_loc] = (file, item_line + 1, item_column + 1)
        else:
            first = locations.get(key_loc)
            elsewhere = f" (first set at {first[0]}:{first[1]})" if first else ""
            problems.append(
                ConfigProblem(file, line + 1, column + 1, _dotted(key_loc), f"set twice{elsewhere}")
            )


def _plain(value: Any, file: Path, loc: Loc, locations: dict[Loc, Where]) -> Any:
    """Convert a ruamel node to plain Python, recording the position of every child."""
    if isinstance(value, CommentedMap):
        out: dict[Any, Any] = {}
        for key, child in value.items():
            try:
                line, column = value.lc.key(key)
            except KeyError:  # a key merged in with ``<<: *anchor``: the map's own place
                line, column = value.lc.line, value.lc.col
            locations[(*loc, key)] = (file, line + 1, column + 1)
            out[key] = _plain(child, file, (*loc, key), locations)
        return out
    if isinstance(value, CommentedSeq):
        items = []
        for index, child in enumerate(value):
            line, column = value.lc.item(index)
            locations[(*loc, index)] = (file, line + 1, column + 1)
            items.append(_plain(child, file, (*loc, index), locations))
        return items
    if hasattr(value, "value") and type(value).__module__.startswith("ruamel"):
        return value.value  # ruamel's scalar wrappers (ScalarFloat etc. are real numbers already)
    return value


def _from_validation(
    exc: ValidationError, data: dict[str, Any], locations: dict[Loc, Where], path: Path
) -> list[ConfigProblem]:
    errors = exc.errors(include_url=False)
    # A misspelt key shows as two errors: the unknown key and the required one it meant.
    # The suggestion on the first says it all.
    meant = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            fields = field_names_at(CitywatchConfig, data, tuple(err["loc"][:-1]))
            close = nearest(err["loc"][-1], fields)
            if close:
                meant.add((*err["loc"][:-1], close))
    problems = []
    for err in errors:
        if err["type"] == "missing" and tuple(err["loc"]) in meant:
            continue
        if err["type"] == "none_required" and len(errors) > 1:
            continue  # the other branch of ``X | None`` says what is wrong
        message = reword(err, CitywatchConfig, data)
        loc = tuple(err["loc"])
        if err["type"] == "union_tag_invalid":  # point at the ``type:`` key itself
            loc = (*loc, str((err.get("ctx") or {}).get("discriminator", "")).strip("'"))
        problems.append(_locate(path, data, locations, loc, message))
    return problems


def _once(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Each problem once: a mistake inside a YAML anchor is reached through every alias.

    The first path is kept, and the problem says how many places share the line.
    """
    first: dict[tuple[Path, int | None, int | None, str], ConfigProblem] = {}
    count: dict[tuple[Path, int | None, int | None, str], int] = {}
    for problem in problems:
        key = (problem.file, problem.line, problem.column, problem.message)
        first.setdefault(key, problem)
        count[key] = count.get(key, 0) + 1
    out = []
    for key, problem in first.items():
        if count[key] > 1:
            problem = replace(
                problem,
                message=f"{problem.message} (in a YAML anchor used {count[key]} times)",
            )
        out.append(problem)
    return out


def _locate(
    path: Path, data: Any, locations: dict[Loc, Where], loc: Loc, message: str
) -> ConfigProblem:
    """Map a model path to the deepest YAML position that exists in the data.

    Pydantic adds union tags (e.g. ``illegal_parking``) to the path that are not in the
    YAML; they are skipped. A missing field points at its parent mapping.
    """
    data_loc: Loc = ()
    node = data
    for part in loc:
        if _has_child(node, part):
            node = node[part]
            data_loc = (*data_loc, part)
        elif isinstance(node, dict) and part == loc[-1]:
            data_loc = (*data_loc, part)  # a missing or unknown key: name it in the path
    where = None
    probe = data_loc
    while probe and where is None:
        where = locations.get(probe)
        probe = probe[:-1]
    file, line, column = where if where else (path, None, None)
    return ConfigProblem(file, line, column, _dotted(data_loc), message)


def _has_child(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
