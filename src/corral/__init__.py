"""corral: a compute resource manager for machine-learning work.

Kept tiny on purpose: the CLI imports this package on every call, so nothing heavy
is imported here.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``corral.Executor`` and friends (:mod:`corral.futures`), imported on first use."""
    if name in ("Executor", "JobFuture", "JobError", "RemoteTraceback"):
        from . import futures

        return getattr(futures, name)
    raise AttributeError(f"module 'corral' has no attribute {name!r}")
