"""The simulator (``corral sim``): replay real GPU-cluster traces through the real scheduler
in virtual time. :mod:`.trace` holds the trace model, :mod:`.loaders` reads trace files."""
