"""``GET /v1/usage``: accounting (CPU-, GPU-hours, energy, waste, cost) over a window."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...api.models import UsageQuery, UsageReport
from ..views import usage_view
from .deps import ManagerDep

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage", response_model=UsageReport)
async def usage(query: Annotated[UsageQuery, Query()], manager: ManagerDep) -> UsageReport:
    """``since`` and ``by`` are checked by the view, with its one-line errors."""
    return UsageReport.model_validate(usage_view(manager, query.since, query.by))
