"""citywatch: turns what a city's sensors and cameras see into deduplicated work orders.

The top-level package holds what every tier shares: the wire contracts
(:mod:`citywatch.contracts`), the operator config tree (:mod:`citywatch.config`), the
embedded single-machine stack (:mod:`citywatch.stack`) and the CLI. The stages of the data
flow live in their own subpackages: hardware → edge → stream → center, with models beside edge.
"""

__version__ = "0.1.0"
