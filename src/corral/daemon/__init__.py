"""The daemon: the loop that applies scheduling decisions, its HTTP API, and recovery."""
