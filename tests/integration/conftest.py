"""Fixtures for the integration suite: a real ``corral`` daemon driven through the real CLI.

Helpers live in ``corral_harness.py`` (a distinct module name, so they never clash with
another test directory's ``conftest``).
"""

from __future__ import annotations

import pytest

from corral_harness import Corral, make_corral, teardown


@pytest.fixture
def corral_factory(tmp_path):
    """Make ``Corral`` homes (not started); all of them are torn down after the test."""
    made: list[Corral] = []

    def make() -> Corral:
        c = make_corral(str(tmp_path))
        made.append(c)
        return c

    yield make
    for c in made:
        teardown(c)


@pytest.fixture
def corral(corral_factory) -> Corral:
    """A fresh CORRAL_HOME; the daemon is not started (tests call ``corral.up(...)``)."""
    return corral_factory()


@pytest.fixture
def corral4(corral) -> Corral:
    """A started daemon with 4 simulated GPUs."""
    corral.up("--simulate-gpus", "4")
    return corral


@pytest.fixture(scope="module")
def shared_corral(tmp_path_factory):
    """One daemon (2 simulated GPUs) for a whole module of independent, quick tests."""
    c = make_corral(str(tmp_path_factory.mktemp("shared")))
    try:
        c.up("--simulate-gpus", "2")
        yield c
    finally:
        teardown(c)
