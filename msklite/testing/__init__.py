"""Test harness shipped with msklite: the pytest plugin (`msk_cluster` fixtures, plugin.py),
clusters in other processes (external.py) and per-request fault hooks (control.py)."""
