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
def fresh_corral4(corral) -> Corral:
    """A daemon of its own with 4 simulated GPUs (for tests that stop or kill it)."""
    corral.up("--simulate-gpus", "4")
    return corral


@pytest.fixture(scope="module")
def _module_corral4(request, tmp_path_factory):
    c = make_corral(str(tmp_path_factory.mktemp("m4")))
    try:
        config = getattr(request.module, "CORRAL_CONFIG", None)
        if config:
            c.write_config(config)
        c.up("--simulate-gpus", "4")
        yield c
    finally:
        teardown(c)


@pytest.fixture
def corral4(_module_corral4) -> Corral:
    """A daemon with 4 simulated GPUs, shared by the tests of one module (a module's
    ``CORRAL_CONFIG`` text becomes its config.yaml). After each test, whatever it left
    pending or running is cancelled and waited for, so the next test starts idle."""
    c = _module_corral4
    yield c
    left = [str(j["id"]) for j in c.ps()]
    if left:
        c.run("cancel", *left)
        c.run("wait", *left, timeout=90)


@pytest.fixture(scope="module")
def shared_corral(tmp_path_factory):
    """One daemon (2 simulated GPUs) for a whole module of independent, quick tests."""
    c = make_corral(str(tmp_path_factory.mktemp("shared")))
    try:
        c.up("--simulate-gpus", "2")
        yield c
    finally:
        teardown(c)
