"""The web dashboard (``/ui/``) and the few cheap answers it needs besides the API.

The page is plain HTML/JS/CSS shipped in the package (:mod:`corral.ui`, no build step,
nothing from a CDN). Over the TCP listener it sits behind the gateway like every other
path (no token, no page: :mod:`corral.daemon.gateway`); ``corral ui`` prints a link that
carries a short-lived token, which the gateway trades for a cookie. On the Unix socket
it is served too (harmless: the socket already says who calls).

Besides the static files:

* ``GET /v1/whoami``: who the caller is and what the page may offer them (``admin``,
  the token's ``scope``; actions only where the caller owns the job or is an admin and
  the scope is not ``read``);
* ``GET /v1/ui/address``: where the TCP listener is (what ``corral ui`` links to);
* ``GET /v1/ui/jobs/{id}/series``: one job's usage series, downsampled to ``points``;
* ``GET /v1/ui/jobs/{id}/log``: a log's tail (or what follows ``offset``), bounded;
* ``GET /v1/ui/usage/timeline``: measured GPU-hours, wasted GPU-hours, energy and cost
  per user or queue, in time buckets (from the usage series).

Every answer is bounded: nothing here reads all jobs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from ...api.models import ResponseModel, UsageLine
from ...errors import NotFound, ValidationError
from ...resources import GPU
from .. import auth
from .deps import AccessDep, InfoDep, ManagerDep
from .jobs import JobIdPath
from .principal import PrincipalDep

router = APIRouter(tags=["ui"])


# -- answers (the dashboard's own; kept here so they travel with it) ---------------------------

class Whoami(ResponseModel):
    """``GET /v1/whoami``: who calls and what the page may offer them."""

    user: str
    uid: int | None
    admin: bool
    #: The token's scope (read, submit, admin); None on the Unix socket.
    scope: str | None
    via: Literal["token", "socket"]
    #: May this caller act on jobs at all (their own; any as an admin)?
    may_act: bool
    expires: float | None


class UiAddress(ResponseModel):
    """``GET /v1/ui/address``: the TCP listener (all None when there is none)."""

    listen: str | None
    tls: bool
    url: str | None


class SeriesPoint(ResponseModel):
    t: float
    t0: float
    cpu: float | None
    memory: int
    gpu_util: float | None
    gpu_memory: int | None
    power: float | None


class JobSeries(ResponseModel):
    """``GET /v1/ui/jobs/{id}/series``: the usage series, downsampled."""

    job: int
    rows: int
    points: list[SeriesPoint]


class LogTail(ResponseModel):
    """``GET /v1/ui/jobs/{id}/log``: a bounded piece of a log."""

    job: int
    stream: str
    offset: int
    next: int
    size: int | None
    text: str
    state: str


class TimelineSeries(ResponseModel):
    gpu_hours: list[float]
    wasted_gpu_hours: list[float]
    energy_kwh: list[float]
    cost: list[float] | None


class UsageTimeline(ResponseModel):
    """``GET /v1/ui/usage/timeline``: per key, per bucket; and the window's lines."""

    since: float
    now: float
    step: float
    buckets: int
    by: str
    keys: list[str]
    currency: str | None
    series: dict[str, TimelineSeries]
    lines: list[UsageLine]
    total: UsageLine

#: Where the page's files are (the package :mod:`corral.ui`).
ASSETS = FilePath(__file__).resolve().parent.parent.parent / "ui"
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(js|css|svg|png|ico)\Z")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "svg": "image/svg+xml",
          "png": "image/png", "ico": "image/x-icon", "html": "text/html; charset=utf-8"}
#: Job names, commands and logs are other users' text: the page never runs inline code.
_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                       "base-uri 'none'; form-action 'none'"}
#: The most a log answer carries (bytes) and the longest series (points).
LOG_MAX = 256 * 1024
SERIES_MAX = 2000
BUCKETS_MAX = 200


# -- the page ----------------------------------------------------------------------------------

@router.get("/ui", include_in_schema=False)
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/", include_in_schema=False)
async def index() -> Response:
    page = ASSETS / "index.html"
    if not page.is_file():
        raise NotFound("the dashboard is not installed with this corral (no corral/ui/index.html)")
    return FileResponse(page, media_type=_TYPES["html"], headers={**_HEADERS, "cache-control": "no-store"})


@router.get("/ui/static/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    """One of the page's files, by its plain name (no folders, no dots but the suffix)."""
    match = _ASSET.match(name)
    path = ASSETS / name
    if match is None or not path.is_file():
        raise NotFound(f"no such dashboard file: {name[:80]}")
    return FileResponse(path, media_type=_TYPES[match.group(1)],
                        headers={**_HEADERS, "cache-control": "no-cache"})


# -- who is calling ----------------------------------------------------------------------------

@router.get("/v1/whoami", response_model=Whoami)
async def whoami(request: Request, who: PrincipalDep, access: AccessDep) -> dict:
    """The caller, whether an admin, and the token's scope (``null`` on the socket)."""
    from ..gateway import TOKEN_SCOPE

    token = request.scope.get(TOKEN_SCOPE)
    uid = who.uid if who.uid is not None else (os.geteuid() if not access.system else None)
    name = who.name or (auth.user_name(uid) if uid is not None else "")
    scope = token.scope if token is not None else None
    return {"user": name, "uid": uid, "admin": auth.is_admin(who, access), "scope": scope,
            "via": "token" if token is not None else "socket",
            "may_act": scope != "read" and (uid is not None),
            "expires": token.expires if token is not None else None}


# -- where the listener is ---------------------------------------------------------------------

@router.get("/v1/ui/address", response_model=UiAddress)
async def address(request: Request, info: InfoDep) -> dict:
    """``{listen, tls, url}``: the TCP listener the daemon was started with (all None
    when it has none). Read from the daemon's config once (the listener is bound at start)."""
    found = getattr(request.app.state, "ui_address", None)
    if found is None:
        found = request.app.state.ui_address = _address(info)
    return found


def _address(info: dict) -> dict:
    listen, tls = info.get("listen"), info.get("tls")
    if listen is None and info.get("home"):
        from ...config import load_config

        path = os.path.join(info["home"], "config.yaml")
        try:
            config = load_config(path) if os.path.exists(path) else None
        except Exception:  # noqa: BLE001 - a config edited since the start: no link, not a 500
            config = None
        if config is not None:
            listen, tls = config.listen, bool(config.tls_cert)
    if not listen:
        return {"listen": None, "tls": False, "url": None}
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        import socket

        host = socket.gethostname() if tls else ("127.0.0.1" if host != "::" else "::1")
    shown = f"[{host}]" if ":" in host else host
    return {"listen": listen, "tls": bool(tls), "url": f"{'https' if tls else 'http'}://{shown}:{port}/ui/"}


# -- one job's series and log --------------------------------------------------------------------

@router.get("/v1/ui/jobs/{job_id}/series", response_model=JobSeries)
async def series(job_id: JobIdPath, manager: ManagerDep,
                 points: Annotated[int, Query(ge=1, le=SERIES_MAX)] = 300) -> dict:
    """The job's usage series as at most ``points`` points: CPU cores used, memory
    (bytes, the highest seen), GPU utilization (percent, mean), GPU memory (bytes) and
    GPU power (watts, from energy). Readable by everyone, like ``corral show``."""
    job = manager.store.get_job(job_id)
    rows = manager.store.usage_rows(job_id=job.id)
    step = max(1, -(-len(rows) // points))
    out = []
    for i in range(0, len(rows), step):
        chunk = rows[i:i + step]
        t0, t1 = chunk[0].t0, chunk[-1].t1
        span = sum(max(r.t1 - r.t0, 0.0) for r in chunk)
        utils = [(r.gpu_util, r.t1 - r.t0) for r in chunk if r.gpu_util is not None]
        util_dt = sum(dt for _, dt in utils)
        gmem = [r.gpu_memory for r in chunk if r.gpu_memory is not None]
        out.append({
            "t": t1,
            "cpu": sum(r.cpu_seconds for r in chunk) / span if span > 0 else None,
            "memory": max(r.memory for r in chunk),
            "gpu_util": (sum(u * dt for u, dt in utils) / util_dt if util_dt > 0 else
                         (sum(u for u, _ in utils) / len(utils) if utils else None)),
            "gpu_memory": max(gmem) if gmem else None,
            "power": sum(r.energy_j for r in chunk) / span if span > 0 and job.allocation is not None
            and job.allocation.gpu_count else None,
            "t0": t0,
        })
    return {"job": job.id, "rows": len(rows), "points": out}


@router.get("/v1/ui/jobs/{job_id}/log", response_model=LogTail)
async def log(job_id: JobIdPath, manager: ManagerDep, access: AccessDep, who: PrincipalDep,
              stream: Literal["stdout", "stderr"] = "stdout",
              offset: Annotated[int | None, Query(ge=0, le=2**62)] = None,
              most: Annotated[int, Query(alias="max", ge=1, le=LOG_MAX)] = 64 * 1024) -> dict:
    """``{offset, next, size, text}``: what follows byte ``offset`` (at most ``max``
    bytes), or without ``offset`` the last ``max`` bytes. The job's owner and admins only."""
    job = manager.store.get_job(job_id)
    auth.require_owner(who, access, job, "shown")
    executor = manager.executor
    size = None
    where = executor.log_location(job.id, stream) if executor.capabilities.logs else None
    if where:
        try:
            size = os.stat(where).st_size
        except OSError:
            size = 0
    start = offset if offset is not None else max(0, (size or 0) - most)
    data = executor.read_log(job.id, stream, start, most) or b""
    if offset is None and start > 0:                  # begin at a line, not in the middle of one
        cut = data.find(b"\n")
        if 0 <= cut < len(data) - 1:
            start, data = start + cut + 1, data[cut + 1:]
    return {"job": job.id, "stream": stream, "offset": start, "next": start + len(data), "size": size,
            "text": data.decode("utf-8", "replace"), "state": job.state.value}



# -- usage over time ---------------------------------------------------------------------------

@router.get("/v1/ui/usage/timeline", response_model=UsageTimeline)
async def timeline(manager: ManagerDep, since: str = "24h", by: Literal["user", "queue"] = "user",
                   buckets: Annotated[int, Query(ge=1, le=BUCKETS_MAX)] = 24) -> dict:
    """Per ``by`` key, per time bucket: measured GPU-hours, wasted GPU-hours, energy
    (kWh) and their cost (GPU-hours and energy at the configured rates), from the usage
    series (what jobs held and drew, sampled), over the window ``since``; and the window's
    accounting lines and total as ``/v1/usage`` gives them, over the jobs that have
    readings in the window or run now (a job that ended inside the window without a
    single reading is left out; ``/v1/usage`` reads every job to find it)."""
    from ...durations import parse_duration

    window = parse_duration(since, "since", bare_unit=86400, what="window", examples="expected e.g. 24h, 7d, 30m")
    if window <= 0:
        raise ValidationError("since", since, "expected a window longer than zero, e.g. 24h")
    now = manager.clock()
    start = now - window
    step = window / buckets
    rows = manager.store.usage_rows(since=start)
    # The jobs that count: those with readings in the window and those running now --
    # never a scan of every job in the store (what /v1/usage does).
    jobs = manager.store.get_jobs({r.job_id for r in rows} | set(manager.running))
    owners = {j.id: (j.user or "?") if by == "user" else j.spec.queue for j in jobs}
    rates = manager.cost or {}
    gpu_rate, energy_rate = float(rates.get(GPU, 0.0)), float(rates.get("energy", 0.0))
    out: dict[str, list[list[float]]] = {}
    for r in rows:
        key = owners.get(r.job_id)
        if key is None:
            continue
        t = min(max(r.t1, start), now)
        b = min(int((t - start) / step), buckets - 1) if step > 0 else 0
        span = r.t1 - r.t0
        share = 1.0 if span <= 0 else max(0.0, min(r.t1, now) - max(r.t0, start)) / span
        cells = out.setdefault(key, [[0.0, 0.0, 0.0] for _ in range(buckets)])
        cell = cells[b]
        cell[0] += r.gpu_seconds * share / 3600.0
        cell[1] += r.idle_gpu_seconds * share / 3600.0
        cell[2] += r.energy_j * share / 3.6e6
    keys = sorted(out, key=lambda k: -sum(c[0] for c in out[k]))
    series = {k: {"gpu_hours": [c[0] for c in out[k]], "wasted_gpu_hours": [c[1] for c in out[k]],
                  "energy_kwh": [c[2] for c in out[k]],
                  "cost": [c[0] * gpu_rate + c[2] * energy_rate for c in out[k]] if rates else None}
              for k in keys}
    from ...monitor.accounting import account, totals

    lines = account(jobs, rows, since=start, now=now, by=by, cost=manager.cost or None)
    return {"since": start, "now": now, "step": step, "buckets": buckets, "by": by, "keys": keys,
            "currency": rates.get("currency"), "series": series,
            "lines": [line.to_dict() for line in lines], "total": totals(lines).to_dict()}
