"""corral: a compute resource manager for machine-learning work.

Kept tiny on purpose: the CLI imports this package on every call, so nothing heavy
is imported here.
"""

__version__ = "0.1.0"
