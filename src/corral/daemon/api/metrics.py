"""``GET /metrics``: the daemon's Prometheus metrics (:mod:`corral.daemon.metrics`), in
the text exposition format; open to whoever may connect, like ``corral ps``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    """Jobs by queue, state and reason; resources per node; GPUs with their holders;
    wait, run and cycle histograms; store errors. Read from memory: no store scan."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
