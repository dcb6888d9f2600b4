"""Executors: where and how jobs run. One folder (or module) per engine, one interface
(:mod:`.base`), one contract suite for all (``tests/contract/test_executor.py``).

* ``local`` (:mod:`.local`): process sessions on this machine under per-job supervisors;
* ``simulated`` (:mod:`.simulated`): jobs in virtual time, for the simulator and tests.

:func:`create` builds the one a daemon's config names (``engine: {type: ...}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Capabilities, Executor, ExitCallback, ExitStatus, Reading, Running, StopReason

if TYPE_CHECKING:
    import asyncio

    from ..config import Config
    from ..paths import Paths

#: Engine names a config may give, with what they are.
ENGINES = {"local": "processes on this machine"}


def create(config: "Config", paths: "Paths", on_exit: ExitCallback, loop: "asyncio.AbstractEventLoop",
           **options: Any) -> tuple[Executor, dict[str, Any]]:
    """The executor the config names, started, and what it found (for ``corral nodes``)."""
    if config.engine == "local":
        from .local.build import build_local

        return build_local(config, paths, on_exit, loop, **options)
    from ..errors import ValidationError

    raise ValidationError("engine.type", config.engine, "expected one of: " + ", ".join(ENGINES))


__all__ = ["Capabilities", "Executor", "ExitCallback", "ExitStatus", "Reading", "Running", "StopReason", "create",
           "ENGINES"]
