"""Fixtures of the cluster tests: the local standalone Flink cluster, started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobs.common.settings import SettingsError
from tests.support.sessionize import PSEUDONYM_KEY
from uxstream.cluster import local
from uxstream.cluster.config import LocalCluster
from uxstream.errors import UserError


def worker_env() -> dict[str, str]:
    """The TaskManagers' environment: the Python UDFs pseudonymise with the key the e2e oracle uses."""
    return {"UXSTREAM_PSEUDONYM_KEY": PSEUDONYM_KEY}


@pytest.fixture(scope="module")
def flink_cluster() -> Iterator[LocalCluster]:
    """The local cluster (`make cluster-up`), up for the module's tests and stopped after them."""
    try:
        cluster = LocalCluster.from_env()
    except (UserError, SettingsError) as exc:
        pytest.fail(f"bad cluster settings: {exc}", pytrace=False)
    try:
        local.up(cluster, env=worker_env())
    except UserError as exc:
        local.down(cluster)
        pytest.fail(f"the local Flink cluster did not start: {exc}", pytrace=False)
    yield cluster
    local.down(cluster)
