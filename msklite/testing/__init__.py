"""Test harness shipped with msklite: the pytest plugin (`msk_cluster` fixtures)."""
