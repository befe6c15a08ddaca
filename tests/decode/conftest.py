"""Fixtures of the decode tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import JvmDecoder


@pytest.fixture(scope="session")
def jvm_decoder() -> Iterator[JvmDecoder]:
    """The JVM decoder (uxstream-udf's DecodeCli) in one long-lived process."""
    decoder = JvmDecoder()
    yield decoder
    decoder.close()
