# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the mirror tests."""
import pytest

from ringtest.mirrortest import fake_and_mirror


@pytest.fixture()
def upstream_and_mirror():
    with fake_and_mirror(bearer=True) as (up, srv):
        yield up, srv
