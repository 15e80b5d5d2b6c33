"""The config tree: one pydantic model tree validating every YAML file operators edit.

Load with :func:`load_config`; every error names the file, the line and the field path.
"""

from citywatch.config.loader import ConfigError, ConfigProblem, check_files, load_config
from citywatch.config.tree import CitywatchConfig

__all__ = ["CitywatchConfig", "ConfigError", "ConfigProblem", "check_files", "load_config"]
