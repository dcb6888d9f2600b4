"""``GET /v1/queues``: each queue's quota, usage, borrowing and waiting jobs."""

from __future__ import annotations

from fastapi import APIRouter

from ...api.models import Queues, QueueView
from ..views import queues_view
from .deps import ManagerDep

router = APIRouter(prefix="/v1", tags=["queues"])


@router.get("/queues", response_model=Queues)
async def queues(manager: ManagerDep) -> Queues:
    fair = manager.driver.fair
    return Queues(queues=[QueueView.model_validate(q) for q in queues_view(manager)],
                  fair_share=fair.shares() if fair is not None else {},
                  backfill=manager.scheduling.backfill, preemption=manager.scheduling.preemption)
