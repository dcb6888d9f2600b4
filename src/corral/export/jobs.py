"""Job files as the daemon would take them, for export.

``corral submit -f`` sends the file to the daemon, which parses it
(:func:`corral.spec.load_documents`), fills what a job does not ask for from its config's
``defaults`` (:func:`corral.spec.with_defaults`) and refuses a queue or priority class it
does not have. An export does the same here, against the config it is given, so what is
exported is what would have been submitted, and a job that would be refused is refused
with the same field named.
"""

from __future__ import annotations

from typing import Any

from ..errors import invalid
from ..spec import JobSpec, load_documents, with_defaults


def load_jobs(text: str, source: str, config: Any, config_path: str) -> list[JobSpec]:
    """The jobs of a job file's ``text`` (named ``source`` in errors) under ``config``
    (a :class:`corral.config.Config` read from ``config_path``)."""
    specs = [with_defaults(s, config.default_requests) for s in load_documents(text, source=source)]
    queues = [q.name for q in config.scheduling.queues]
    classes = [c.name for c in config.priority_classes]
    for spec in specs:
        where = f"{spec.origin}: " if spec.origin else ""
        if spec.queue not in queues:
            raise invalid("spec.queue", spec.queue, f"expected one of the queues of {config_path}: "
                                                    f"{', '.join(queues)}; --config FILE reads another corral config",
                          detail=f"{where}unknown queue in spec.queue")
        if spec.priority_class and spec.priority_class not in classes:
            raise invalid("spec.priority", spec.priority_class,
                          f"expected a number or a priority class of {config_path}: {', '.join(classes) or 'none'}",
                          detail=f"{where}unknown priority class in spec.priority")
    return specs
