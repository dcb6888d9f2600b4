"""``/v1/nodes`` and ``/v1/top``: what the nodes have, who holds it, how it is used;
``/v1/nodes/{name}/drain`` and ``undrain`` (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from ...api.models import DrainAnswer, NodeList, NodeView, Top
from .. import auth
from ..views import node_view, top_view
from .deps import AccessDep, InfoDep, ManagerDep
from .principal import PrincipalDep

router = APIRouter(prefix="/v1", tags=["nodes"])


@router.get("/nodes", response_model=NodeList)
async def nodes(manager: ManagerDep, info: InfoDep, access: AccessDep) -> NodeList:
    """Capacity, allocatable, allocated and free per resource; each GPU's and core's
    holder; how limits are enforced; the access rules (mode, socket, admins)."""
    rules = access.to_dict()
    return NodeList(nodes=[NodeView.model_validate({**node, "access": rules}) for node in node_view(manager, info)])


@router.get("/top", response_model=Top)
async def top(manager: ManagerDep, info: InfoDep) -> Top:
    """Running jobs with their latest readings, and every GPU's."""
    return Top.model_validate(top_view(manager, info))


def _drain(manager, access, who, name: str, drain: bool) -> DrainAnswer:
    auth.require_admin(who, access, f"{'drain' if drain else 'undrain'} nodes")
    changed = manager.drain(name, drain)
    running = sorted(job_id for job_id, run in manager.driver.state.running.items() if name in run.allocation.nodes)
    return DrainAnswer(node=name, state=manager.node_states().get(name, "Lost"), changed=changed, running=running)


@router.post("/nodes/{name}/drain", response_model=DrainAnswer)
async def drain(name: str, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> DrainAnswer:
    """Start nothing new on the node (admins); its running jobs run on. Kept across restarts."""
    return _drain(manager, access, who, name, True)


@router.post("/nodes/{name}/undrain", response_model=DrainAnswer)
async def undrain(name: str, manager: ManagerDep, access: AccessDep, who: PrincipalDep) -> DrainAnswer:
    """Let jobs start on a drained node again (admins)."""
    return _drain(manager, access, who, name, False)
