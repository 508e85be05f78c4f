"""Shared helpers for tests with real clients against a real in-process cluster.

The `msk_cluster` fixture itself comes from msklite's pytest plugin (msklite/testing/plugin.py),
exactly as users get it.
"""

from __future__ import annotations

import itertools

import pytest

_names = itertools.count()


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique within the session, readable in logs."""
    return f"{request.node.name[:60].replace('[', '-').replace(']', '')}-{next(_names)}"
