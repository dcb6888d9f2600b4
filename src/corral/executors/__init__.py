"""Executors: where and how a job's processes run (local process sessions for now)."""

from .base import Executor, ExitStatus, LaunchRequest, Running, StopReason

__all__ = ["Executor", "ExitStatus", "LaunchRequest", "Running", "StopReason"]
