# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures for integration and real-client tests.

`registry` is a fresh ringport on a temporary root for each test. Setting
RINGTEST_TARGET=distribution runs the same tests against Debian's Distribution
2.8.2 instead (used to check that a test describes real registry behaviour; it is
not part of CI).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))

from ringtest.harness import Distribution, Ringport  # noqa: E402


def _target():
    return os.environ.get("RINGTEST_TARGET", "ringport")


@pytest.fixture
def registry():
    if _target() == "distribution":
        r = Distribution()
    else:
        r = Ringport()
    try:
        r.start()
        yield r
    finally:
        r.cleanup()


@pytest.fixture(scope="module")
def shared_registry():
    if _target() == "distribution":
        r = Distribution()
    else:
        r = Ringport()
    try:
        r.start()
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def distribution():
    d = Distribution()
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
