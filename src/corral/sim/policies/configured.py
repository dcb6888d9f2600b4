"""The policy a daemon config file describes (``corral sim --config FILE``).

The same file the daemon reads (``$CORRAL_HOME/config.yaml``, :mod:`corral.config`),
so "what if we had these queues and quotas" is answered with the exact settings that
would be deployed. What the simulator takes from it:

* ``policy`` -- the single-queue ordering (``best-effort-fifo``, ``strict-fifo``,
  ``sjf``, ``fair-share``);
* ``queues`` -- Kueue-style quotas (``nominal``, ``borrowing_limit``,
  ``lending_limit``), per-queue ordering, ``max_user_gpus`` / ``max_user_jobs``. A trace
  job goes to the queue named after its user field (Philly's virtual cluster, Alibaba's
  qos class, SWF's user id, a corral job's user) when the config has one, else to
  ``default`` -- as a job submitted without ``--queue`` would;
* ``fair_share.half_life``, ``backfill`` (EASY, on requested times: jobs without one
  never jump a reservation, as in the daemon), ``preemption`` (priority and quota
  reclaim; a victim stops at once and is requeued with its work lost, as the daemon
  restarts a requeued job -- the simulator does not model the stop signal's grace).

Everything else in the file (enforcement, idle GPUs, cost, users ...) does not affect
scheduling decisions and is ignored. A config without queues, fair share, backfill or
preemption runs the fast single-queue path, exactly as the daemon does (``policy``
there); otherwise the daemon's multi-tenant cycle (:class:`~.base.TenantPolicy`).
No oracle knowledge: estimates are requested times only.
"""

from __future__ import annotations

from .base import TenantPolicy

NAME = "config"


def from_config(config, name: str = NAME):
    """A core policy (fast path) or a :class:`TenantPolicy` for a :class:`corral.config.Config`."""
    if not config.tenancy:
        from ...scheduler import get_policy

        return get_policy(config.policy)
    from ...scheduler.tenancy import DEFAULT_QUEUE_POLICY

    return TenantPolicy(name, queue_policy=DEFAULT_QUEUE_POLICY.get(config.policy, "priority"), backfill=config.backfill,
                        half_life=float(config.half_life), queues=tuple(config.queues), preempt=config.preemption)


def load(path: str, name: str = NAME):
    """Read and validate the daemon config file at ``path`` (one-line errors naming the
    file and field) and return its policy; a missing file is an error here."""
    import os

    from ...config import load_config
    from ...errors import ValidationError

    if not os.path.isfile(path):
        raise ValidationError("--config", path, "expected an existing daemon config file (YAML)",
                              detail="no such file")
    return from_config(load_config(path), name)
