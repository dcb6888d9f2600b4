"""What the daemon's roles share: one object the manager builds and hands to each.

The roles -- :mod:`.commands`, :mod:`.lifecycle`, :mod:`.admission` -- depend on each
other in one direction only (commands use lifecycle and admission, lifecycle uses
admission), and on this context for the rest: the store, the executor, the driver, the
gates, the run-time history, the clock and the event loop's timers, and the manager's
``kick`` (run a cycle soon) and ``notify`` (answer whoever waits for a job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..executors.base import Executor
    from ..resources import Resources
    from ..scheduler.history import RunTimeHistory
    from ..store.base import Store
    from .driver import Driver
    from .gates import Gates
    from .monitor import Monitor


@dataclass
class Daemon:
    store: "Store"
    executor: "Executor"
    driver: "Driver"
    gates: "Gates"
    history: "RunTimeHistory"
    clock: Callable[[], float]
    #: Run a callback on the next turn of the event loop (at once without a loop).
    call_soon: Callable[..., Any]
    #: Run a callback after a delay (nothing without a loop).
    call_later: Callable[..., Any]
    #: Run a scheduling cycle soon (several kicks make one).
    kick: Callable[[], None]
    #: A job ended: answer whoever waits for it.
    notify: Callable[[int], None]
    default_requests: "Resources"
    monitor: "Monitor | None" = None
    #: Prometheus counters and histograms (:mod:`corral.daemon.metrics`), when served.
    metrics: Any = None
