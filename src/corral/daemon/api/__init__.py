"""The HTTP API (served on the daemon's Unix socket; the CLI and SDK speak it).

Jobs travel in the same Kubernetes-flavoured document form as ``job.yaml`` files and are
validated here again, so scripts that talk to the API directly get the same one-line
errors the CLI prints. Errors are ``{"error": "...", "lines": [...]}`` with a 4xx code.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator, Callable

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .. import __version__
from ..errors import CorralError, DaemonUnavailable, Infeasible, NotFound, ValidationError
from ..job import JobState
from dataclasses import replace

from ..spec import JobSpec, build_spec, load_documents, parse_document
from . import auth
from .manager import Manager
from ..durations import parse_duration
from .views import job_view, node_view, queues_view, top_view, usage_view


def create_app(manager: Manager, info: dict[str, Any], shutdown: Callable[[], None],
               lifespan=None, access: "auth.Access | None" = None) -> FastAPI:
    app = FastAPI(title="corral", version=__version__, lifespan=lifespan)
    #: Who may do what (see auth.py); user mode when not given.
    app.state.access = access or auth.Access()

    @app.exception_handler(CorralError)
    async def _corral_error(request: Request, exc: CorralError) -> JSONResponse:
        lines = exc.lines if isinstance(exc, (Infeasible, auth.PermissionDenied)) else [str(exc)]
        return JSONResponse(status_code=exc.status, content={"error": str(exc), "lines": lines})

    @app.get("/v1/health")
    async def health() -> dict:
        return {"ok": True, "pid": os.getpid(), "version": __version__, "home": info.get("home"),
                "pending": manager.pending_count, "running": len(manager.running),
                "mode": app.state.access.mode, "access": app.state.access.to_dict()}

    @app.post("/v1/jobs", status_code=201)
    async def submit(request: Request, body: dict = Body(...)) -> dict:
        """Submit a batch, all or nothing. ``jobs`` is a list whose items are job
        documents (the ``job.yaml`` form) or ``{"flags": {...}}`` (the CLI's options:
        command, requests, limits, name, env, workdir, labels, priority, time); or give
        ``yaml`` (text with one or more documents) and ``source`` instead of ``jobs``."""
        base_env = body.get("base_env") or {}
        if not isinstance(base_env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in base_env.items()):
            raise ValidationError("base_env", "...", "expected a mapping of strings to strings")
        specs = _specs_from(body)
        who = auth.caller_of(request)
        auth.check_submitter(who, app.state.access)
        # System mode: a user's job gets a clean environment, not the submitter's.
        base_env = auth.submitter_env(who, app.state.access, base_env)
        jobs = manager.submit(specs, base_env, user=who.name, uid=who.uid, gid=who.gid)
        positions = manager.queue_positions()
        return {"jobs": [job_view(j, manager, positions, {}) for j in jobs]}   # no estimates: keep submit fast

    @app.get("/v1/jobs")
    async def list_jobs(state: list[str] = Query(default=[]), limit: int | None = None) -> dict:
        states = None
        if state:
            states = set()
            for raw in state:
                for part in raw.split(","):
                    states.add(_parse_state(part))
        jobs = manager.store.list_jobs(states, limit=limit)
        positions = manager.queue_positions()
        estimates = manager.estimated_starts() if any(j.state is JobState.PENDING for j in jobs) else {}
        return {"jobs": [job_view(j, manager, positions, estimates) for j in jobs]}

    @app.get("/v1/jobs/{job_id}")
    async def show(request: Request, job_id: int) -> dict:
        job = manager.store.get_job(job_id)
        # Readable by everyone (like squeue), but its environment only by its owner and admins.
        private = auth.may_act(auth.caller_of(request), job, app.state.access)
        return job_view(job, manager, detail=True, private=private)

    @app.post("/v1/jobs/cancel")
    async def cancel(request: Request, body: dict = Body(...)) -> dict:
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ValidationError("ids", ids, "expected a list of job ids")
        # All or nothing: another user's job in the batch and none is cancelled (unknown
        # ids are reported one by one below, as before).
        auth.check_jobs(auth.caller_of(request), manager.store.get_jobs(ids), app.state.access, "cancelled")
        results = []
        for job_id in ids:
            try:
                results.append({"id": job_id, "result": manager.cancel(job_id), "ok": True})
            except NotFound as exc:
                results.append({"id": job_id, "result": str(exc), "ok": False})
        return {"results": results}

    @app.post("/v1/jobs/update")
    async def update(request: Request, body: dict = Body(...)) -> dict:
        """Change pending jobs' priority, time limit or queue (running: time limit). All
        jobs are checked first; non-admins may only lower priorities and time limits."""
        from ..spec import _parse_priority, _parse_queue, _parse_time_limit

        ids = _ids(body)
        unknown = sorted(set(body) - {"ids", "priority", "time", "queue"})
        if unknown:
            raise ValidationError("update", unknown[0], "accepted: ids, priority, time, queue", detail="unknown field")
        priority = _parse_priority(body["priority"], "priority") if body.get("priority") is not None else None
        limit = _parse_time_limit(body["time"], "time") if body.get("time") is not None else None
        queue = _parse_queue(body["queue"], "queue") if body.get("queue") is not None else None
        if priority is None and limit is None and queue is None:
            raise ValidationError("update", body, "expected at least one of priority, time, queue")
        _require_owners(request, manager, ids)
        admin = auth.is_admin(auth.caller_of(request), auth.access_of(request))
        done = manager.update(ids, priority=priority, time_limit=limit, queue=queue, admin=admin)
        return {"results": [{"id": job_id, "result": text} for job_id, text in done]}

    @app.post("/v1/jobs/hold")
    async def hold(request: Request, body: dict = Body(...)) -> dict:
        """Hold pending jobs: all or none (each must be the caller's, or the caller an admin)."""
        ids = _ids(body)
        _require_owners(request, manager, ids)
        return {"changed": manager.hold(ids, who=caller(request)[1])}

    @app.post("/v1/jobs/release")
    async def release(request: Request, body: dict = Body(...)) -> dict:
        ids = _ids(body)
        _require_owners(request, manager, ids)
        return {"changed": manager.release(ids, who=caller(request)[1])}

    @app.get("/v1/jobs/{job_id}/wait")
    async def wait(job_id: int, timeout: float = 30.0) -> dict:
        job = manager.store.get_job(job_id)
        if not job.terminal and manager.closing:
            raise DaemonUnavailable("corral daemon is shutting down; ask again")
        if not job.terminal:
            fut = manager.future_for(job_id)
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout=max(0.0, min(timeout, 300.0)))
            except asyncio.TimeoutError:
                pass
            finally:
                manager.drop_future(job_id, fut)
            job = manager.store.get_job(job_id)
            if not job.terminal and manager.closing:
                raise DaemonUnavailable("corral daemon is shutting down; ask again")
        return job_view(job, manager)

    @app.get("/v1/jobs/{job_id}/logs")
    async def logs(request: Request, job_id: int, stream: str = "stdout", follow: bool = False, offset: int = 0):
        if stream not in ("stdout", "stderr"):
            raise ValidationError("stream", stream, "expected stdout or stderr")
        auth.require_owner(request, manager.store.get_job(job_id), "shown")  # 404 for unknown jobs, 403
        return StreamingResponse(_tail(manager, job_id, stream, follow, offset), media_type="text/plain")

    @app.get("/v1/nodes")
    async def nodes() -> dict:
        out = node_view(manager, info)
        for node in out:
            node["access"] = app.state.access.to_dict()   # the mode, the socket, the admins
        return {"nodes": out}

    @app.get("/v1/queues")
    async def queues() -> dict:
        fair = manager.driver.fair
        return {"queues": queues_view(manager), "fair_share": fair.shares() if fair is not None else {},
                "backfill": manager.scheduling.backfill, "preemption": manager.scheduling.preemption}

    @app.get("/v1/top")
    async def top() -> dict:
        """Running jobs with their latest readings, and every GPU's."""
        return top_view(manager, info)

    @app.get("/v1/usage")
    async def usage(since: str = "7d", by: str = "user") -> dict:
        return usage_view(manager, since, by)

    @app.post("/v1/prune")
    async def prune(request: Request, body: dict = Body(default={})) -> dict:
        auth.require_admin(request, "prune finished jobs")
        older = body.get("older_than")
        if older is None:
            seconds = manager.retention if getattr(manager, "retention", 0) else 30 * 86400
        else:
            seconds = parse_duration(older, "older_than", bare_unit=86400, allow_zero=True, what="age",
                                     examples="expected e.g. 30d, 12h, 0")
        ids = manager.prune(seconds)
        return {"deleted": ids, "older_than": seconds}

    @app.post("/v1/shutdown")
    async def shutdown_daemon(request: Request) -> dict:
        auth.require_admin(request, "stop the daemon")
        asyncio.get_running_loop().call_soon(shutdown)
        return {"ok": True, "running_jobs_keep_running": len(manager.running)}

    return app


_FLAGS = {"command", "requests", "limits", "name", "env", "workdir", "labels", "priority", "time", "signal",
          "grace", "idle_gpu", "queue", "array", "after", "retries", "hold", "preemptible", "requeue"}


def caller(request: Request) -> tuple[int | None, str]:
    """The uid and user name of whoever is on the other end of the socket (from the
    kernel's SO_PEERCRED, see :func:`corral.daemon.server.peer_protocol`)."""
    client = request.client
    host = client.host if client is not None else ""
    if not host.startswith("uid:"):
        return None, ""
    try:
        uid = int(host.split(":")[1])
    except (IndexError, ValueError):
        return None, ""
    return uid, user_name(uid)


def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _specs_from(body: dict) -> list[JobSpec]:
    if "yaml" in body:
        text, source = body.get("yaml"), str(body.get("source") or "<input>")
        if not isinstance(text, str):
            raise ValidationError("yaml", text, "expected YAML text")
        specs = load_documents(text, source=source)
        if not specs:
            raise ValidationError(source, "", "expected at least one job document", detail="no jobs")
        workdir = body.get("default_workdir")
        if isinstance(workdir, str):
            specs = [s if s.workdir else replace(s, workdir=workdir) for s in specs]
        return specs
    docs = body.get("jobs")
    if not isinstance(docs, list) or not docs:
        raise ValidationError("jobs", docs, "expected a non-empty list of job documents")
    specs = []
    for i, doc in enumerate(docs):
        where = f"jobs[{i}]" if len(docs) > 1 else "job"
        if isinstance(doc, dict) and set(doc) == {"flags"}:
            flags = doc["flags"]
            if not isinstance(flags, dict) or not set(flags) <= _FLAGS:
                unknown = sorted(set(flags) - _FLAGS) if isinstance(flags, dict) else flags
                raise ValidationError(f"{where}.flags", unknown, "accepted: " + ", ".join(sorted(_FLAGS)),
                                      detail="unknown flags")
            specs.append(build_spec(flags.get("command") or "", requests=flags.get("requests"),
                                    limits=flags.get("limits"), name=flags.get("name") or "",
                                    env=flags.get("env"), workdir=flags.get("workdir"),
                                    labels=flags.get("labels"), priority=flags.get("priority", 0),
                                    time_limit=flags.get("time"), stop_signal=flags.get("signal"),
                                    kill_grace=flags.get("grace"), idle_gpu=flags.get("idle_gpu"),
                                    queue=flags.get("queue"), array=flags.get("array"),
                                    dependencies=flags.get("after"), retries=flags.get("retries"),
                                    hold=flags.get("hold"), preemptible=flags.get("preemptible"),
                                    requeue=flags.get("requeue")))
        else:
            specs.append(parse_document(doc, where=where))
    return specs


def _ids(body: dict) -> list[int]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValidationError("ids", ids, "expected a non-empty list of job ids")
    return ids


def _require_owners(request: Request, manager: Manager, ids: list[int]) -> None:
    """Every job must exist and be the caller's (or the caller an admin), before anything changes."""
    from . import auth

    for job_id in ids:
        auth.require_owner(request, manager.store.get_job(job_id))


def _parse_state(text: str) -> JobState:
    for s in JobState:
        if s.value.lower() == text.strip().lower():
            return s
    raise ValidationError("state", text, "expected one of: " + ", ".join(s.value for s in JobState))


async def _tail(manager: Manager, job_id: int, stream: str, follow: bool, offset: int) -> AsyncIterator[bytes]:
    read = manager.executor.read_log
    pos = max(offset, 0)
    while True:
        chunk = read(job_id, stream, pos) or b""
        if chunk:
            pos += len(chunk)
            yield chunk
            continue
        if not follow:
            return
        job = manager.store.get_job(job_id)
        if job.terminal:
            # One last read: the job may have written just before it ended.
            while True:
                rest = read(job_id, stream, pos) or b""
                if not rest:
                    return
                pos += len(rest)
                yield rest
        await asyncio.sleep(0.1)
