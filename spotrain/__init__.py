"""spotrain: train language models on the cheapest spot capacity without losing work or overspending.

The package is laid out by architecture (see README.md):
``spotrain.recipes`` (schema + node-side runtime), ``spotrain.pricing``, ``spotrain.jobs``,
``spotrain.launcher`` (CLI and backends) and ``spotrain.tui``.
"""

__version__ = "0.1.0"
