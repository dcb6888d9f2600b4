"""Corral's jobs and queues as Kubernetes and Kueue manifests (``corral export``).

One module per job:

* :mod:`.kubernetes` -- a job spec as a ``batch/v1`` Job (plus a headless Service for a gang);
* :mod:`.pods` -- its container (command, environment, resources, stop signal) and placement;
* :mod:`.kueue` -- the config's queues as ResourceFlavors, ClusterQueues, LocalQueues and
  WorkloadPriorityClasses;
* :mod:`.machine` -- the machine those quotas and GPU models come from;
* :mod:`.fromview` -- a submitted job, read back from the daemon, as a spec;
* :mod:`.names` -- DNS-1123 names, label values and exact quantities;
* :mod:`.render` -- YAML with the notes as comments, or JSON.

The exporters are pure (spec, config and machine in; manifests out); reading files, the
daemon and the machine is the CLI's (:mod:`corral.cli.export_cmd`). See docs/kubernetes.md.
"""
