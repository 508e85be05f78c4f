"""Observability of a running cluster: what MSK's open monitoring exposes to Prometheus
(`exporter`, needs prometheus-client: the `metrics` extra) and the snapshots the web console
shows (`state`), over rates and lag history sampled every few seconds (`meters`).

Nothing here runs on the produce or fetch path: the brokers keep plain counters and these
modules read them when asked.
"""

from importlib.util import find_spec


def available() -> bool:
    """Whether the Prometheus side can render (prometheus-client is installed), without
    importing it."""
    return find_spec("prometheus_client") is not None
