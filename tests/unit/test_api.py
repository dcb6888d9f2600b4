"""The daemon's HTTP API in-process (corral.daemon.api): typed requests and answers, the
caller taken from the peer credentials only, one error shape."""

from __future__ import annotations

import json
import os

import pytest
from starlette.requests import Request

from asgi_client import call
from corral.api import models
from corral.capacity.node import make_node
from corral.daemon import auth
from corral.daemon.api import create_app
from corral.daemon.api.principal import PEER, principal, with_peer
from corral.daemon.views import job_view, node_view, queues_view, top_view, usage_view
from corral.executors.base import Capabilities, ExitStatus
from manager_helpers import GiB, FakeExecutor, manager

SYSTEM = auth.Access(mode=auth.SYSTEM, daemon_uid=0)
#: Peer credentials (pid, uid, gid) of two users passwd does not know: their names are their uids.
ALICE, BOB = (4001, 61001, 61001), (4002, 61002, 61001)
SPOOFED = {"X-Forwarded-For": "uid:0:0", "Forwarded": 'for="uid:0:0"', "X-Real-IP": "uid:0:0",
           "X-Forwarded-User": "root"}


def doc(*command: str, **requests: object) -> dict:
    return {"spec": {"command": list(command) or ["true"], "resources": {"requests": requests}}}


class LogExecutor(FakeExecutor):
    """A fake executor whose jobs' logs are byte strings the test sets."""

    capabilities = Capabilities(stop_signals=True, device_pinning=True, logs=True)

    def __init__(self, nodes):
        super().__init__(nodes)
        self.logs: dict[tuple[int, str], bytes] = {}

    def read_log(self, job_id, stream, offset=0, size=1 << 20):
        data = self.logs.get((job_id, stream))
        return None if data is None else data[offset:offset + size]

    def log_location(self, job_id, stream):
        return f"/logs/{job_id}.{stream}"


@pytest.fixture
def m():
    return manager(executor=LogExecutor([make_node("n1", cores=4, memory=8 * GiB, gpus=2)]))


@pytest.fixture
def shared_dir(tmp_path_factory):
    """A directory every user may enter (the daemon checks a workdir with the submitter's
    rights, and pytest's own temporary directories are root's alone)."""
    import tempfile

    d = tempfile.mkdtemp(prefix="crlapi", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    os.rmdir(d)


@pytest.fixture
def stops():
    return []


@pytest.fixture
def app(m, stops):
    return create_app(m, {"home": "/srv/corral"}, lambda: stops.append(True), access=SYSTEM)


def submit(app, *docs: dict, peer=ALICE, **extra) -> list[dict]:
    answer = call(app, "POST", "/v1/jobs", {"jobs": list(docs), **extra}, peer=peer)
    assert answer.status == 201, answer.body
    return answer.json()["jobs"]


def lines(answer) -> list[str]:
    body = answer.json()
    assert set(body) == {"error", "lines"} and body["error"] == "; ".join(body["lines"]), body
    return body["lines"]


# -- the principal ---------------------------------------------------------------------------

def test_principal_is_the_peer_whatever_the_headers_say(app, m, stops):
    answer = call(app, "POST", "/v1/jobs", {"jobs": [doc()]}, headers=SPOOFED, peer=ALICE)
    [job] = answer.json()["jobs"]
    stored = m.store.get_job(job["id"])
    assert (job["user"], stored.uid, stored.gid) == ("61001", 61001, 61001)
    answer = call(app, "POST", "/v1/shutdown", headers=SPOOFED, peer=ALICE)
    assert answer.status == 403
    assert lines(answer) == ["permission denied: only admins may stop the daemon (you are 61001)"]
    answer = call(app, "POST", "/v1/prune", headers=SPOOFED, peer=BOB)
    assert lines(answer) == ["permission denied: only admins may prune finished jobs (you are 61002)"]
    assert stops == []


def test_a_client_address_is_not_a_principal(app, m):
    """What the daemon's protocol once wrote into the ASGI client now means nothing."""
    answer = call(app, "POST", "/v1/jobs", {"jobs": [doc()]}, client=("uid:0:0", 1), headers=SPOOFED)
    assert answer.status == 403
    assert lines(answer) == ["permission denied: cannot tell who you are (no peer credentials on the socket)"]
    assert m.store.list_jobs() == []


def test_principal_reads_the_scope_key_only():
    scope = {"type": "http", "headers": [(b"x-forwarded-for", b"uid:0:0")], "client": ("uid:0:0", 9)}
    assert principal(Request(scope)) == auth.Principal(None)
    scope[PEER] = (4242, 0, 0)
    assert principal(Request(scope)) == auth.Principal(0, 0, "root", 4242)


def test_root_peer_is_admin(app, stops):
    answer = call(app, "POST", "/v1/shutdown", peer=(1, 0, 0))
    assert answer.status == 200 and answer.json() == {"ok": True, "running_jobs_keep_running": 0}


# -- requests the models reject --------------------------------------------------------------

@pytest.mark.parametrize("ids, line", [
    ([True], "invalid value for ids[0]: true (expected a job id, a positive integer)"),
    ([1, 2**63], "invalid value for ids[1]: 9223372036854775808 (expected a job id, a positive integer)"),
    ([0], "invalid value for ids[0]: 0 (expected a job id, a positive integer)"),
    (["1"], 'invalid value for ids[0]: "1" (expected a job id, a positive integer)'),
    ([1.0], "invalid value for ids[0]: 1.0 (expected a job id, a positive integer)"),
    ([], "invalid value for ids: [] (expected a non-empty list of job ids)"),
    ("1", 'invalid value for ids: "1" (expected a non-empty list of job ids)'),
])
def test_job_ids_are_strict(app, m, ids, line):
    [job] = submit(app, doc())
    for action in ("cancel", "hold", "release"):
        answer = call(app, "POST", f"/v1/jobs/{action}", {"ids": ids}, peer=ALICE)
        assert answer.status == 422 and lines(answer) == [line], (action, answer.body)
    answer = call(app, "POST", "/v1/jobs/update", {"ids": ids, "priority": -1}, peer=ALICE)
    assert lines(answer) == [line]
    assert m.store.get_job(job["id"]).state.value == "Running"      # job 1 was not touched


@pytest.mark.parametrize("path", ["/v1/jobs/9223372036854775808", "/v1/jobs/0/wait", "/v1/jobs/-3/logs",
                                  "/v1/jobs/abc"])
def test_job_ids_in_paths(app, path):
    answer = call(app, "GET", path, peer=ALICE)
    value = path.split("/")[3]
    assert answer.status == 422
    assert lines(answer) == [f'invalid value for job_id: "{value}" (expected a job id, a positive integer)']


@pytest.mark.parametrize("body, line", [
    (None, "missing request body (expected a JSON object)"),
    ([1], "invalid value for request body: [1] (expected a JSON object)"),
    ({"ids": [1], "all": True}, "unknown field all (accepted: ids, tasks, ranges, selector)"),
    ({}, "missing ids (expected a non-empty list of job ids)"),
])
def test_malformed_bodies(app, body, line):
    answer = call(app, "POST", "/v1/jobs/cancel", body, peer=ALICE)
    assert answer.status == 422 and lines(answer) == [line]


def test_invalid_json_and_update_without_a_change(app):
    answer = call(app, "POST", "/v1/jobs/cancel", raw=b'{"ids": [1,', peer=ALICE)
    [line] = lines(answer)
    assert answer.status == 422 and line.startswith("invalid JSON in the request body at position 11 (")
    answer = call(app, "POST", "/v1/jobs/update", {"ids": [1]}, peer=ALICE)
    assert lines(answer) == ["nothing to change (give at least one of priority, time, queue)"]


def test_query_parameters(app):
    assert lines(call(app, "GET", "/v1/jobs?limit=18446744073709551616")) == [
        'invalid value for limit: "18446744073709551616" (expected a number of at most 9223372036854775807)']
    assert lines(call(app, "GET", "/v1/jobs?state=Pending,Bogus")) == [
        'invalid value for state: "Bogus" (expected one of: Pending, Running, Succeeded, Failed, Cancelled)']
    [job] = submit(app, doc())
    assert lines(call(app, "GET", f"/v1/jobs/{job['id']}/logs?stream=stdin", peer=ALICE)) == [
        "invalid value for stream: \"stdin\" (expected 'stdout' or 'stderr')"]
    assert lines(call(app, "GET", f"/v1/jobs/{job['id']}/wait?timeout=inf")) == [
        'invalid value for timeout: "inf" (expected a finite number)']


def test_errors_have_one_shape(app):
    assert lines(call(app, "GET", "/v1/jobs/99")) == ["no such job: 99"]
    assert lines(call(app, "GET", "/v1/nope")) == ["not found: GET /v1/nope"]
    answer = call(app, "DELETE", "/v1/jobs")
    assert answer.status == 405 and lines(answer) == ["method not allowed: DELETE /v1/jobs"]


# -- submit ----------------------------------------------------------------------------------

def test_submit_documents_and_flags_in_one_batch(app, m, tmp_path, shared_dir):
    jobs = submit(app, doc("echo", "a", gpu=1),
                  {"flags": {"command": ["echo", "b"], "requests": {"cpu": "500m"}, "name": "b", "hold": True}},
                  default_workdir=str(shared_dir))
    assert [j["command"] for j in jobs] == [["echo", "a"], ["echo", "b"]]
    assert jobs[1]["held"] is True and jobs[1]["name"] == "b" and jobs[0]["requests"]["nvidia.com/gpu"] == "1"
    assert [m.store.get_job(j["id"]).spec.workdir for j in jobs] == [str(shared_dir)] * 2


def test_submit_yaml(app, m, tmp_path, shared_dir):
    text = "spec: {command: [sleep, '1']}\n---\nspec: {command: [sleep, '2'], workingDir: /}\n"
    answer = call(app, "POST", "/v1/jobs", {"yaml": text, "source": "jobs.yaml", "default_workdir": str(shared_dir)},
                  peer=ALICE)
    assert answer.status == 201 and [j["command"][1] for j in answer.json()["jobs"]] == ["1", "2"]
    assert [j.spec.workdir for j in m.store.list_jobs()] == [str(shared_dir), "/"]
    answer = call(app, "POST", "/v1/jobs", {"yaml": "", "source": "empty.yaml"}, peer=ALICE)
    assert lines(answer) == ["empty.yaml: no job documents (expected at least one YAML document with kind: Job)"]


@pytest.mark.parametrize("body, line", [
    ({"jobs": [{"flags": {"command": ["x"], "gpu": 1}}]},
     "unknown field jobs[0].flags.gpu (accepted: command, requests, limits, name, env, workdir, labels, priority, "
     "time, signal, grace, idle_gpu, queue, array, after, retries, hold, preemptible, requeue, gpus, gpu_models, "
     "node_selector, nodes, pty, resumable)"),
    ({"jobs": [{"flags": {"command": ["x"], "hold": "yes"}}]},
     'invalid value for jobs[0].flags.hold: "yes" (expected true or false)'),
    ({"jobs": ["echo hi"]},
     'invalid value for jobs[0]: "echo hi" (expected a job document (a mapping, the job.yaml form) or '
     '{"flags": {...}})'),
    ({"jobs": [doc()], "base_env": {"PATH": 1}}, "invalid value for base_env.PATH: 1 (expected a string)"),
    ({"jobs": [doc()], "yaml": "spec: {}"},
     "invalid value for request body: " + json.dumps({"jobs": [doc()], "yaml": "spec: {}"}, separators=(",", ":"))[:80]
     + "... (expected either jobs (a list of job documents) or yaml (YAML text))"),
    # the job's own fields are checked by corral.spec, with its messages
    ({"jobs": [doc(cpu="abc")]}, 'invalid quantity for spec.resources.requests.cpu: "abc" '
                                 "(expected e.g. 2, 500m, 0.5)"),
    ({"jobs": [{"flags": {"command": ["x"], "signal": "KILL"}}]}, None),
])
def test_submit_rejections(app, m, body, line):
    answer = call(app, "POST", "/v1/jobs", body, peer=ALICE)
    assert answer.status == 422
    if line is None:
        assert lines(answer)[0].startswith('invalid value for signal: "KILL"')
    else:
        assert lines(answer) == [line]
    assert m.store.list_jobs() == []


# -- acting on jobs --------------------------------------------------------------------------

def test_permissions_are_all_or_nothing(app, m):
    [a] = submit(app, doc(gpu=2), peer=ALICE)
    [b, c] = submit(app, doc(gpu=2), doc(gpu=2), peer=BOB)       # pending behind a
    answer = call(app, "POST", "/v1/jobs/cancel", {"ids": [a["id"], b["id"]]}, peer=BOB)
    assert answer.status == 403 and lines(answer) == [
        f"permission denied: job {a['id']} belongs to 61001 (you are 61002)",
        "no job was cancelled (1 of 2 are not yours)"]
    answer = call(app, "POST", "/v1/jobs/hold", {"ids": [c["id"], a["id"]]}, peer=BOB)
    assert answer.status == 403
    assert [j.state.value for j in m.store.list_jobs()] == ["Running", "Pending", "Pending"]
    assert not m.store.get_job(c["id"]).held
    assert call(app, "POST", "/v1/jobs/hold", {"ids": [b["id"], c["id"]]}, peer=BOB).json() == {
        "changed": [b["id"], c["id"]]}
    assert call(app, "POST", "/v1/jobs/release", {"ids": [c["id"]]}, peer=BOB).json() == {"changed": [c["id"]]}
    answer = call(app, "POST", "/v1/jobs/update", {"ids": [c["id"]], "priority": "-5"}, peer=BOB)
    assert answer.status == 200 and answer.json()["results"][0]["id"] == c["id"]
    answer = call(app, "POST", "/v1/jobs/cancel", {"ids": [b["id"], 999]}, peer=BOB)
    assert answer.status == 200 and answer.json()["results"] == [
        {"id": b["id"], "result": answer.json()["results"][0]["result"], "ok": True},
        {"id": 999, "result": "no such job: 999", "ok": False}]


def test_show_leaves_the_environment_to_owner_and_admins(app):
    [job] = submit(app, {"spec": {"command": ["true"], "env": {"TOKEN": "x"}}}, peer=ALICE)
    path = f"/v1/jobs/{job['id']}"
    assert call(app, "GET", path, peer=ALICE).json()["env"] == {"TOKEN": "x"}
    assert call(app, "GET", path, peer=(1, 0, 0)).json()["env"] == {"TOKEN": "x"}
    other = call(app, "GET", path, peer=BOB).json()
    assert "env" not in other and other["user"] == "61001" and other["events"]


def test_logs_stream_from_an_offset_for_the_owner_only(app, m):
    [job] = submit(app, doc(), peer=ALICE)
    m.executor.logs[(job["id"], "stdout")] = b"hello\nworld\n"
    m.executor.logs[(job["id"], "stderr")] = b"oops\n"
    m.on_exit(job["id"], ExitStatus(ended_at=1005.0, exit_code=0))
    base = f"/v1/jobs/{job['id']}/logs"
    answer = call(app, "GET", base, peer=ALICE)
    assert (answer.status, answer.body) == (200, b"hello\nworld\n")
    assert answer.headers["content-type"].startswith("text/plain")
    assert call(app, "GET", base + "?offset=6&follow=true", peer=ALICE).body == b"world\n"
    assert call(app, "GET", base + "?stream=stderr", peer=ALICE).body == b"oops\n"
    answer = call(app, "GET", base, peer=BOB)
    assert answer.status == 403 and lines(answer) == [
        f"permission denied: job {job['id']} belongs to 61001 (you are 61002)"]


def test_wait_answers_ended_jobs_and_refuses_while_closing(app, m):
    [done, pending] = submit(app, doc(gpu=2), doc(gpu=2))
    m.on_exit(done["id"], ExitStatus(ended_at=1005.0, exit_code=3))
    view = call(app, "GET", f"/v1/jobs/{done['id']}/wait").json()
    assert (view["state"], view["exit_code"]) == ("Failed", 3)
    m.closing = True
    answer = call(app, "GET", f"/v1/jobs/{pending['id']}/wait?timeout=1")
    assert answer.status == 503 and lines(answer) == ["corral daemon is shutting down; ask again"]


# -- answers are the models, exactly ---------------------------------------------------------

def _no_extras(value) -> None:
    """Every field of every (nested) model is declared: the views hold nothing the models miss."""
    if isinstance(value, models.ResponseModel):
        assert not value.model_extra, (type(value).__name__, value.model_extra)
        for name in type(value).model_fields:
            _no_extras(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _no_extras(item)
    elif isinstance(value, dict):
        for item in value.values():
            _no_extras(item)


def _same(model, view) -> None:
    parsed = model.model_validate(view)
    _no_extras(parsed)
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == json.loads(json.dumps(view))


def test_views_validate_into_the_models_and_back(app, m):
    [running, waiting, ended] = submit(app, doc(gpu=2), doc(gpu=1), doc(), peer=ALICE)
    submit(app, {"flags": {"command": "true", "hold": True, "array": "0-1%1", "after": "1", "retries": 2}})
    m.on_exit(ended["id"], ExitStatus(ended_at=1005.0, exit_code=0))
    for job in m.store.list_jobs():
        for detail in (False, True):
            for private in (False, True):
                _same(models.JobView, job_view(job, m, detail=detail, private=private))
    assert "reason_detail" in job_view(m.store.get_job(waiting["id"]), m)
    info = {"home": "/srv/corral", "gpu_source": "simulated", "idle_gpu": "warn after 30m"}
    for node in node_view(m, info):
        _same(models.NodeView, {**node, "access": SYSTEM.to_dict()})
    _same(models.Top, top_view(m, info))
    for queue in queues_view(m):
        _same(models.QueueView, queue)
    for by in ("user", "job", "queue"):
        _same(models.UsageReport, usage_view(m, "7d", by))


def test_every_route_answers_its_model(app):
    spec = app.openapi()
    routes = {(path, method): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert {p for p, _ in routes} == {"/v1/health", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/cancel",
                                      "/v1/jobs/select", "/v1/arrays/{array_id}",
                                      "/v1/jobs/update", "/v1/jobs/hold", "/v1/jobs/release",
                                      "/v1/jobs/{job_id}/wait", "/v1/jobs/{job_id}/logs", "/v1/nodes",
                                      "/v1/nodes/{name}/drain", "/v1/nodes/{name}/undrain",
                                      "/v1/queues", "/v1/top", "/v1/usage", "/v1/prune", "/v1/shutdown",
                                      "/v1/events", "/metrics", "/v1/tokens", "/v1/tokens/{ident}", "/v1/whoami",
                                      "/v1/ui/address", "/v1/ui/jobs/{job_id}/log", "/v1/ui/jobs/{job_id}/series",
                                      "/v1/ui/usage/timeline"}
    streams = {"/v1/jobs/{job_id}/logs": "text/plain", "/metrics": "text/plain", "/v1/events": "text/event-stream"}
    for (path, method), op in routes.items():
        answer = op["responses"].get("200") or op["responses"]["201"]
        content = answer["content"]
        if path in streams:
            assert streams[path] in content, path
        else:
            assert content["application/json"]["schema"]["$ref"].startswith("#/components/schemas/"), path
    health = call(app, "GET", "/v1/health").json()
    assert models.Health.model_validate(health).access.mode == "system"


def test_records_validate_into_their_models():
    """The dataclasses the views embed, as their own ``to_dict`` gives them."""
    from corral.capacity.gpu import GpuSample
    from corral.daemon.monitor import Live
    from corral.executors.local.cgroups import CgroupSupport
    from corral.executors.local.enforcement import Enforcement
    from corral.job import Piece
    from corral.resources import Resources
    from corral.store.base import JobUsage

    _same(models.LiveView, Live(t=5.0, cpu=1.5, memory=2 * GiB, gpu_util=40.0, source="cgroup").to_dict())
    _same(models.LiveView, {**Live(t=5.0).to_dict(), "idle_policy": "warn after 30m", "idle_actions": ["warn"]})
    _same(models.UsageTotals, JobUsage(7, rows=3, cpu_seconds=12.5, gpu_util_sum=90.0, gpu_util_dt=3.0).to_dict())
    _same(models.PieceView, Piece("n2", Resources({"cpu": 2000}), (0, 1), (4, 5)).to_dict())
    _same(models.GpuSampleView, GpuSample(0, 55.0, GiB, 120.0, {4242: GiB}).to_dict())
    support = CgroupSupport("v2", {"unified": "/sys/fs/cgroup/corral"}, ("cpu", "memory", "pids"))
    _same(models.Enforcement, Enforcement("cgroup", support).to_dict())
    _same(models.Enforcement, Enforcement("watchdog", why="no cgroup rights").to_dict())


def test_drain_and_undrain_are_for_admins_and_name_a_known_node(app, m):
    answer = call(app, "POST", "/v1/nodes/n1/drain", peer=ALICE)
    assert answer.status == 403
    assert lines(answer) == ["permission denied: only admins may drain nodes (you are 61001)"]
    root = (4242, 0, 0)
    answer = call(app, "POST", "/v1/nodes/n9/drain", peer=root)
    assert answer.status == 404 and lines(answer) == ["no such node: n9 (nodes: n1)"]
    answer = call(app, "POST", "/v1/nodes/n1/drain", peer=root)
    assert answer.status == 200 and answer.json() == {"node": "n1", "state": "Draining", "changed": True,
                                                      "running": []}
    assert m.store.get_meta("drained_nodes") == '["n1"]'          # kept across restarts
    [node] = call(app, "GET", "/v1/nodes", peer=ALICE).json()["nodes"]
    assert node["state"] == "Draining"
    answer = call(app, "POST", "/v1/nodes/n1/undrain", peer=root)
    assert answer.json()["state"] == "Ready" and answer.json()["changed"] is True


def test_a_body_over_the_limit_is_refused_before_anything_is_stored(m, stops):
    small = create_app(m, {"home": "/srv/corral"}, lambda: stops.append(True), access=SYSTEM, max_body=64 * 1024)
    big = {"jobs": [doc("echo", "x" * 70_000)]}
    answer = call(small, "POST", "/v1/jobs", big, peer=ALICE)
    assert answer.status == 413
    [line] = lines(answer)
    assert line.startswith("request body too large: ") and "expected at most 65,536" in line, line
    assert m.store.list_jobs() == []
    # Without a Content-Length (a chunked body) it is cut as soon as it grows past the limit.
    from corral.daemon.api.limits import BodyLimit

    seen = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"x" * 40_000, "more_body": True}] * 3

    async def run():
        out = []
        feed = iter(chunks)

        async def receive():
            return next(feed)

        async def send(message):
            out.append(message)

        await BodyLimit(app, 64 * 1024)({"type": "http", "headers": []}, receive, send)
        return out

    import asyncio

    out = asyncio.run(run())
    assert out[0]["status"] == 413 and seen == [40_000]                # the second chunk never reached it
    assert json.loads(out[1]["body"])["error"].startswith("request body too large: at least 80,000 bytes")
    assert call(small, "POST", "/v1/jobs", {"jobs": [doc()]}, peer=ALICE).status == 201   # a normal one passes


def test_base_env_that_no_process_could_get_is_refused_at_submit(app, m):
    for env, line in (({"A=B": "x"}, 'invalid variable name in base_env: "A=B" (expected a variable name, not '
                                     'empty, without = or NUL)'),
                      ({"": "x"}, 'invalid variable name in base_env: "" (expected a variable name, not empty, '
                                  'without = or NUL)'),
                      ({"A": "x\x00y"}, 'invalid value for base_env.A: "x\\x00y" (expected text without NUL '
                                        'characters)')):
        answer = call(app, "POST", "/v1/jobs", {"jobs": [doc()], "base_env": env}, peer=ALICE)
        assert (answer.status, lines(answer)) == (422, [line])
    assert m.store.list_jobs() == []
    ok = call(app, "POST", "/v1/jobs", {"jobs": [doc()], "base_env": {"BASH_FUNC_f%%": "() { :; }"}}, peer=ALICE)
    assert ok.status == 201                          # exported shell functions are a caller's own business


def test_a_yaml_alias_bomb_is_refused_at_once():
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
        f'{chr(98 + i)}: &{chr(98 + i)} [{",".join(["*" + chr(97 + i)] * 9)}]' for i in range(8)]
    app_ = create_app(manager(executor=LogExecutor([make_node("n1", cores=4, memory=8 * GiB, gpus=2)])),
                      {"home": "/h"}, lambda: None, access=SYSTEM)
    answer = call(app_, "POST", "/v1/jobs", {"yaml": "\n".join(levels) + "\n", "source": "bomb.yaml"}, peer=ALICE)
    assert answer.status == 422
    assert lines(answer) == ["bomb.yaml: YAML stands for more than 100,000 values once its aliases are expanded"]


def test_priorities_are_policy_in_system_mode(app, m):
    from corral.priorities import Priorities, PriorityClass

    def submit_at(priority, peer=ALICE):
        return call(app, "POST", "/v1/jobs", {"jobs": [{"spec": {"command": ["true"], "priority": priority}}]},
                    peer=peer)

    # No classes: nobody but an admin outranks the default.
    answer = submit_at(1_000_000)
    assert (answer.status, lines(answer)) == (403, ["permission denied: priority 1000000 is above what 61001 may "
                                                    "use (at most 0; classes you may use: none)"])
    assert submit_at(-5).status == 201 and submit_at(1_000_000, peer=(4242, 0, 0)).status == 201
    m.priorities = Priorities([PriorityClass("low", -10), PriorityClass("normal", 0),
                               PriorityClass("batch-high", 50, preempt=False),
                               PriorityClass("urgent", 100, users=("someone-else",))])
    answer = submit_at("urgent")
    assert lines(answer) == ["permission denied: priority class urgent is not open to 61001 (classes you may use: "
                             "low=-10, normal=0, batch-high=50)"]
    assert lines(submit_at(51)) == ["permission denied: priority 51 is above what 61001 may use (at most 50; "
                                    "classes you may use: low=-10, normal=0, batch-high=50)"]
    assert lines(submit_at("nosuch")) == ['unknown priority class: "nosuch" (expected an integer or a priority '
                                          'class (low=-10, normal=0, batch-high=50, urgent=100))']
    [job] = submit_at("batch-high").json()["jobs"]
    stored = m.store.get_job(job["id"]).spec
    assert (stored.priority, stored.priority_class, stored.preempts) == (50, "batch-high", False)
    assert m.driver.pending_job(m.store.get_job(job["id"])).preempts is False   # it never preempts
    assert submit_at("urgent", peer=(4242, 0, 0)).status == 201                 # admins: any class


def test_a_submit_with_a_key_seen_before_returns_the_first_batch(app, m):
    body = {"jobs": [doc(), doc()], "idempotency_key": "3f2a-retry.1"}
    first = call(app, "POST", "/v1/jobs", body, peer=ALICE).json()["jobs"]
    again = call(app, "POST", "/v1/jobs", body, peer=ALICE).json()["jobs"]
    assert [j["id"] for j in again] == [j["id"] for j in first] and len(m.store.list_jobs()) == 2
    other = call(app, "POST", "/v1/jobs", body, peer=BOB).json()["jobs"]     # keys are per user
    assert len(other) == 2 and {j["id"] for j in other}.isdisjoint({j["id"] for j in first})
    answer = call(app, "POST", "/v1/jobs", {"jobs": [doc()], "idempotency_key": "no spaces"}, peer=ALICE)
    assert answer.status == 422 and lines(answer)[0].startswith("invalid value for idempotency_key: \"no spaces\"")


def test_a_big_cancel_lets_other_requests_in(app, m, monkeypatch):
    """The event loop runs other work between slices of a big cancel (no request waits
    for thousands of cancels): a task that watches the count sees it part way."""
    import asyncio

    from corral.daemon.api import jobs as jobs_api

    monkeypatch.setattr(jobs_api, "CANCEL_SLICE", 0.0)      # a slice per job: no timing in the test

    from asgi_client import _run
    from corral.daemon.api.principal import with_peer

    ids = [j["id"] for j in submit(app, *[doc() for _ in range(400)])]
    seen: list[int] = []
    done = []
    real = m.cancel
    count = [0]

    def counting(job_id):
        count[0] += 1
        return real(job_id)

    m.cancel = counting
    payload = json.dumps({"ids": ids}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/jobs/cancel", "raw_path": b"/v1/jobs/cancel", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"corral"), (b"content-type", b"application/json"),
                                          (b"content-length", str(len(payload)).encode())],
             "client": None, "server": None, "state": {}}

    async def watch():
        while not done:
            seen.append(count[0])
            await asyncio.sleep(0)

    async def both():
        watcher = asyncio.create_task(watch())
        answer = await _run(with_peer(app, *ALICE), scope, payload)
        done.append(True)
        await watcher
        return answer

    answer = asyncio.run(both())
    assert answer.status == 200 and all(r["result"] in ("cancelled", "stopping") for r in answer.json()["results"])
    assert any(0 < n < 400 for n in seen), sorted(set(seen))


def test_a_store_that_cannot_be_written_is_a_one_line_507_or_503(app, m):
    import sqlite3

    def full(*args, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    def readonly(*args, **kw):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    m.store.add_jobs = full                           # type: ignore[method-assign]
    answer = call(app, "POST", "/v1/jobs", {"jobs": [doc()]}, peer=ALICE)
    assert (answer.status, lines(answer)) == (507, ["the store cannot take this now (database or disk is full); "
                                                    "nothing was changed; free disk space"])
    m.store.add_jobs = readonly                       # type: ignore[method-assign]
    answer = call(app, "POST", "/v1/jobs", {"jobs": [doc()]}, peer=ALICE)
    assert (answer.status, lines(answer)) == (503, ["the store cannot take this now (attempt to write a readonly "
                                                    "database); nothing was changed; try again"])
    assert call(app, "GET", "/v1/jobs", peer=ALICE).status == 200    # reads are still served


# -- malformed requests (what chaos/malformed.py found) --------------------------------------

SURROGATE = "invalid value for {}: {} (expected valid Unicode text, without lone surrogates such as \\ud800)"


@pytest.mark.parametrize("body, line", [
    ({"jobs": [doc("\ud800")]}, SURROGATE.format("jobs[0].spec.command[0]", '"\\ud800"')),
    ({"jobs": [{"spec": {"command": ["true"], "env": {"A": "x\udcff"}}}]},
     SURROGATE.format("jobs[0].spec.env.A", '"x\\udcff"')),
    ({"jobs": [{"metadata": {"labels": {"k": "\udc80"}}, **doc()}]},
     SURROGATE.format("jobs[0].metadata.labels.k", '"\\udc80"')),
    ({"jobs": [doc()], "base_env": {"\udcff": "x"}},
     'invalid key in base_env: "\\udcff" (expected valid Unicode text, without lone surrogates such as \\ud800)'),
    ({"jobs": [doc()], "\ud800": 1},
     'invalid key in request body: "\\ud800" (expected valid Unicode text, without lone surrogates such as '
     '\\ud800)'),
    ({"yaml": "spec: [\n", "source": "\ud800.yaml"}, SURROGATE.format("source", '"\\ud800.yaml"')),
])
def test_lone_surrogates_are_refused_before_anything_is_stored(app, m, body, line):
    # JSON's \ud800 escapes decode to strings no argument, file name or answer can hold:
    # stored, such a job made every later listing a 500.
    answer = call(app, "POST", "/v1/jobs", body, peer=ALICE)
    assert (answer.status, lines(answer)) == (422, [line])
    assert m.store.list_jobs() == []
    answer = call(app, "POST", "/v1/jobs/update", {"ids": [1], "time": "\ud800"}, peer=ALICE)
    assert lines(answer) == [SURROGATE.format("time", '"\\ud800"')]
    assert call(app, "GET", "/v1/jobs").status == 200


@pytest.mark.parametrize("value", ["1.0", " 1", "1_0", "+1", "1\n", "\u0661"])
def test_job_ids_in_paths_are_decimal_digits(app, value):
    submit(app, *[doc()] * 10)                     # jobs 1 to 10 exist: none of these may name one
    for suffix in ("", "/wait", "/logs"):
        answer = call(app, "GET", f"/v1/jobs/{value}{suffix}", peer=ALICE)
        assert (answer.status, lines(answer)) == (422, [
            f"invalid value for job_id: {show(value)} (expected a job id, a positive integer)"])
    for query in ("/v1/jobs?limit=1.0", "/v1/jobs?limit=+1", "/v1/jobs/1/logs?offset=%201".replace("%20", " ")):
        answer = call(app, "GET", query, peer=ALICE)
        assert answer.status == 422 and lines(answer)[0].endswith("(expected a whole number, in decimal digits)")


def show(value: str) -> str:
    from corral.errors import show_value

    return show_value(value)


def test_error_lines_are_one_line_whatever_the_request_holds(app, m):
    cases = [
        ("POST", "/v1/jobs", {"jobs": [doc()], "a\nb": 1},
         'unknown field "a\\nb" (accepted: jobs, yaml, source, default_workdir, base_env, idempotency_key)'),
        ("POST", "/v1/jobs", {"jobs": [{"spec": {"command": ["true"], "workingDir": "/no/such\ndir"}}]},
         'invalid value for workdir: "/no/such\\ndir" (expected an existing directory you can enter)'),
        ("POST", "/v1/jobs", {"jobs": [doc()], "default_workdir": "/\x00"},
         'invalid value for default_workdir: "/\\x00" (paths cannot contain NUL characters)'),
        ("POST", "/v1/jobs", {"yaml": "spec: [\n", "source": "a\nb.yaml"},
         '"a\\nb.yaml": invalid YAML at line 2, column 1: did not find expected node content'),
        ("GET", "/v1/jobs?state=Pending%0ARunning".replace("%0A", "\n"), None,
         'invalid value for state: "Pending\\nRunning" (expected one of: Pending, Running, Succeeded, Failed, '
         'Cancelled)'),
        ("POST", "/v1/nodes/a\nb/drain", None, 'no such node: "a\\nb" (nodes: n1)'),
        ("GET", "/v1/no\npe", None, 'not found: GET "/v1/no\\npe"'),
    ]
    for method, path, body, line in cases:
        answer = call(app, method, path, body, peer=(1, 0, 0))
        assert 400 <= answer.status < 500 and lines(answer) == [line], (path, answer.body)
    long = call(app, "GET", "/v1/" + "p" * 8192)
    assert lines(long) == ['not found: GET "/v1/' + "p" * 76 + '..."']
    key = call(app, "POST", "/v1/jobs/cancel", {"k" * 2**20: 1}, peer=ALICE)
    assert lines(key) == ['unknown field "' + "k" * 80 + '..." (accepted: ids, tasks, ranges, selector)']
    assert m.store.list_jobs() == []


def test_an_answer_line_is_escaped_and_capped_wherever_it_came_from():
    from corral.daemon.api.errors import MAX_LINE, answer

    body = json.loads(answer(422, ["a\nb\x00c \ud800", "x" * 5000]).body)
    assert body["lines"][0] == "a\\nb\\x00c \\ud800"
    assert len(body["lines"][1]) == MAX_LINE and body["lines"][1].endswith("...")


@pytest.mark.parametrize("raw, line", [
    (b"[" * 10_000, "invalid JSON in the request body (nested too deeply)"),
    (b'{"ids": ["\xff"]}', "invalid JSON in the request body (not UTF-8: byte 0xff at position 10)"),
    (b'{"ids": [' + b"9" * 5000 + b"]}", "invalid JSON in the request body (an integer of more than 4,300 digits)"),
])
def test_bodies_the_json_decoder_chokes_on_say_why(app, raw, line):
    answer = call(app, "POST", "/v1/jobs/cancel", raw=raw, peer=ALICE)
    assert (answer.status, lines(answer)) == (422, [line])


def send_as_is(app, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict]:
    """POST ``chunks`` (each one ASGI message) with exactly these headers; the messages sent back."""
    import asyncio

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": None, "server": None, "state": {}}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def run():
        out, feed = [], iter(messages)

        async def receive():
            return next(feed)

        async def send(message):
            out.append(message)

        await with_peer(app, *ALICE)(scope, receive, send)
        return out

    return asyncio.run(run())


def test_a_body_that_is_not_said_to_be_json_names_its_content_type(app, m):
    body = json.dumps({"jobs": [doc()]}).encode()
    for ctype, shown in ((b"text/plain", '"text/plain"'), (b"application/x-www-form-urlencoded",
                                                           '"application/x-www-form-urlencoded"'), (None, "none")):
        headers = [(b"content-length", str(len(body)).encode())] + ([(b"content-type", ctype)] if ctype else [])
        start, sent = send_as_is(app, "/v1/jobs", headers, [body])
        assert start["status"] == 422 and json.loads(sent["body"])["lines"] == [
            f"invalid Content-Type for the request body: {shown} (expected application/json)"]
    assert m.store.list_jobs() == []


def test_a_chunked_body_over_the_limit_is_a_413_through_the_whole_app(m, stops):
    # FastAPI reads the body itself and turned the limit's refusal into a bare 400.
    small = create_app(m, {"home": "/srv/corral"}, lambda: stops.append(True), access=SYSTEM, max_body=64 * 1024)
    out = send_as_is(small, "/v1/jobs", [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
                     [b'{"jobs": [{"spec": {"command": ["' + b"x" * 40_000, b"x" * 40_000, b'"]}}]}'])
    assert out[0]["status"] == 413 and len([o for o in out if o["type"] == "http.response.start"]) == 1
    assert json.loads(out[1]["body"])["error"].startswith("request body too large: at least 80,0")
    assert m.store.list_jobs() == []


@pytest.mark.parametrize("spec, line", [
    ({"dependencies": 2**63}, "invalid value for spec.dependencies: 9223372036854775808 (expected job ids"),
    ({"dependencies": f"afterany:{2**70}"}, 'invalid value for spec.dependencies: "afterany:1180591620717411303424"'),
    ({"command": ["echo", "x" * 2**20]}, 'invalid value for spec.command[1]: "xxxxx'),
    ({"command": "echo " + "x" * 200_000}, 'invalid value for spec.command: "echo xxx'),
    ({"env": {"A": "x" * 2**20}}, 'invalid value for spec.env.A: "xxxx'),
    ({"workingDir": "/" + "d" * 5000}, 'invalid value for spec.workingDir: "/ddd'),
])
def test_values_no_job_could_start_with_are_refused_at_submit(app, m, spec, line):
    # A dependency past 2**63 - 1 was a 500 (SQLite cannot hold it); an argument or a
    # variable past MAX_ARG_STRLEN, a directory past PATH_MAX, were stored, to fail at start.
    answer = call(app, "POST", "/v1/jobs", {"jobs": [{"spec": {"command": ["true"], **spec}}]}, peer=ALICE)
    assert answer.status == 422
    [got] = lines(answer)
    assert got.startswith(line) and len(got) < 400, got
    assert m.store.list_jobs() == []
    ok = {"command": ["echo", "x" * 100_000], "env": {"A": "x" * 100_000}}
    assert call(app, "POST", "/v1/jobs", {"jobs": [{"spec": ok}]}, peer=ALICE).status == 201


@pytest.mark.parametrize("text, line", [
    ("spec: {command: [echo, 2020-13-45]}\n", "bad.yaml: invalid YAML at line 1, column 24: month must be in 1..12"),
    ("d: &d 2021-02-30\nspec: {command: [echo, *d]}\n",
     "bad.yaml: invalid YAML at line 1, column 4: day is out of range for month"),
    ("spec: {command: ['true'], priority: " + "9" * 5000 + "}\n",
     "bad.yaml: invalid YAML at line 1, column 37: an integer of more than 4,300 digits"),
])
def test_yaml_values_that_cannot_be_built_are_one_line_errors(app, m, text, line):
    answer = call(app, "POST", "/v1/jobs", {"yaml": text, "source": "bad.yaml"}, peer=ALICE)
    assert (answer.status, lines(answer)) == (422, [line])
    assert m.store.list_jobs() == []


def test_a_request_head_over_the_limit_is_refused_however_it_arrives():
    # h11 holds its limit only for a head that is still incomplete: one read can bring a
    # whole head of hundreds of KiB, which it then took.
    import asyncio

    import uvicorn

    from corral.daemon.server import MAX_HEAD, peer_protocol

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.written, self.closed = b"", False

        def get_extra_info(self, name, default=None):
            return default

        def write(self, data):
            self.written += data

        def close(self):
            self.closed = True

        def is_closing(self):
            return self.closed

    from uvicorn.server import ServerState

    async def app(scope, receive, send):            # never reached
        raise AssertionError(scope)

    config = uvicorn.Config(app, lifespan="off", h11_max_incomplete_event_size=MAX_HEAD)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = peer_protocol()(config=config, server_state=ServerState(), app_state={}, _loop=loop)
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /v1/health HTTP/1.1\r\nHost: corral\r\nX-Big: " + b"b" * (70 * 1024)
                               + b"\r\n\r\n")
        assert transport.closed and transport.written.startswith(b"HTTP/1.1 431 ")
        head, _, body = transport.written.partition(b"\r\n\r\n")
        assert json.loads(body)["error"].startswith("request head too large: more than 65,536 bytes")
        assert not protocol._head_too_large(b"POST /v1/jobs HTTP/1.1\r\nHost: corral\r\n\r\n" + b"x" * MAX_HEAD)
    finally:
        loop.close()


# -- arrays, ranges and selectors ------------------------------------------------------------

def test_an_arrays_id_addresses_every_task_and_selectors_pick_jobs(app, m):
    tasks = submit(app, {"metadata": {"name": "sweep"}, "spec": {"command": ["true"], "array": "0-3",
                                                                 "resources": {"requests": {"cpu": "1"}}}})
    head = tasks[0]["id"]
    [other] = submit(app, doc(), peer=BOB)
    picked = call(app, "POST", "/v1/jobs/select?action=cancel", {"ids": [head]}, peer=ALICE).json()
    assert call(app, "POST", "/v1/jobs/select?action=hold", {"ids": [head]}).json()["jobs"] == []   # all run
    assert [j["id"] for j in picked["jobs"]] == [t["id"] for t in tasks] and picked["missing"] == []
    picked = call(app, "POST", "/v1/jobs/select", {"tasks": [[head, 2], [head, 9]], "ids": [999]}, peer=ALICE).json()
    assert [j["id"] for j in picked["jobs"]] == [tasks[2]["id"]] and picked["missing"] == ["999", f"{head}_9"]
    summary = call(app, "GET", f"/v1/arrays/{head}").json()
    assert (summary["tasks"], summary["indices"], summary["name"]) == (4, "0-3", "sweep")
    assert sum(summary["counts"].values()) == 4
    assert lines(call(app, "GET", f"/v1/arrays/{other['id']}")) == [
        f"job {other['id']} is not an array (show it with corral show {other['id']})"]
    # GET /v1/jobs filters.
    ids = lambda q: [j["id"] for j in call(app, "GET", "/v1/jobs?" + q, peer=BOB).json()["jobs"]]  # noqa: E731
    assert ids("name=sw*") == [t["id"] for t in tasks]
    assert ids("mine=true") == [other["id"]] and ids("user=61001") == [t["id"] for t in tasks]
    assert ids(f"array={head}&last=2") == [t["id"] for t in tasks[2:]]
    assert ids("since=1h&queue=default") == [t["id"] for t in tasks] + [other["id"]]
    assert lines(call(app, "GET", "/v1/jobs?label=novalue")) == [
        'invalid value for label: "novalue" (expected KEY=VALUE with a label key such as team or '
        'example.com/team, e.g. team=vision)']
    # cancel ARRAY: every live task; a selector over another user's job: nothing.
    answer = call(app, "POST", "/v1/jobs/cancel", {"selector": {"name": "*"}}, peer=BOB)
    assert answer.status == 403
    answer = call(app, "POST", "/v1/jobs/cancel", {"ids": [head]}, peer=ALICE)
    assert [(r["id"], r["ok"]) for r in answer.json()["results"]] == [(t["id"], True) for t in tasks]
    for t in tasks:
        m.on_exit(t["id"], ExitStatus(ended_at=m.clock(), signal=15))
    assert call(app, "POST", "/v1/jobs/cancel", {"ids": [head]}, peer=ALICE).json() == {"results": []}
    assert m.store.get_job(other["id"]).state.value == "Running"
