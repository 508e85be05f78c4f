"""Observability of a running cluster: what MSK's open monitoring exposes to Prometheus
(`exporter`, needs prometheus-client: the `metrics` extra) and the snapshots the web console
shows (`state`), over rates and lag history sampled every few seconds (`meters`).

Nothing here runs on the produce or fetch path: the brokers keep plain counters and these
modules read them when asked.
"""
