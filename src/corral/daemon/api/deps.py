"""What handlers need from the daemon, as FastAPI dependencies.

:func:`corral.daemon.api.create_app` puts the daemon's collaborators on ``app.state``
(the manager, the node information, the shutdown callback and the access rules); the
handlers ask for them by type (``manager: ManagerDep``), so no handler reaches for a
global and several apps can live side by side (tests).
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

from fastapi import Depends, Request

from ..auth import Access
from ..manager import Manager


def manager(request: Request) -> Manager:
    return request.app.state.manager


def info(request: Request) -> dict[str, Any]:
    """What the daemon found at start: the home, GPU source, enforcement ..."""
    return request.app.state.info


def access(request: Request) -> Access:
    return request.app.state.access


def shutdown(request: Request) -> Callable[[], None]:
    return request.app.state.shutdown


ManagerDep = Annotated[Manager, Depends(manager)]
InfoDep = Annotated[dict, Depends(info)]
AccessDep = Annotated[Access, Depends(access)]
ShutdownDep = Annotated[Callable[[], None], Depends(shutdown)]
