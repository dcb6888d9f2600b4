"""Watching running jobs: process trees, GPU use, idle detection, accounting."""
