"""Enforcement of a job's allocation by the kernel (cgroups): hard limits, not just bookkeeping."""
