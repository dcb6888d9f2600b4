"""``/v1/nodes`` and ``/v1/top``: what the machine has, who holds it, how it is used."""

from __future__ import annotations

from fastapi import APIRouter

from ...api.models import NodeList, NodeView, Top
from ..views import node_view, top_view
from .deps import AccessDep, InfoDep, ManagerDep

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
