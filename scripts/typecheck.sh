#!/usr/bin/env bash
# mypy over the one `citywatch` package as Python sees it installed: the stage folders at the
# top level (edge/, stream/, …) are mapped into it by pyproject's package-dir, which mypy
# cannot follow, so we check a tree of symlinks laid out like the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/citywatch"
for entry in citywatch/*; do ln -s "$PWD/$entry" "$tree/citywatch/$(basename "$entry")"; done
for stage in hardware models edge stream center; do ln -s "$PWD/$stage" "$tree/citywatch/$stage"; done
cd "$tree" && exec ../../.venv/bin/mypy --config-file ../../pyproject.toml -p citywatch "$@"
