"""The dashboard's daemon side: its files served from the package (types, caching, no
path traversal, a page that runs no inline code), behind the gateway's tokens (no token,
no page), ``/v1/whoami`` (what the page may offer), where the listener is, and the
bounded answers the page reads (a job's series, a log's tail, usage over time)."""

from __future__ import annotations

import pytest

from asgi_client import call
from corral.daemon import auth
from corral.daemon.api import create_app
from corral.daemon.api import ui
from corral.daemon.gateway import Gateway
from corral.daemon.tokens import Tokens
from corral.store.base import UsageRow
from manager_helpers import manager

SYSTEM = auth.Access(mode=auth.SYSTEM, daemon_uid=0)
ALICE, BOB, ROOT = (4001, 61001, 61001), (4002, 61002, 61001), (4003, 0, 0)


@pytest.fixture
def env(tmp_path):
    tokens = Tokens(str(tmp_path / "tokens.json"))
    m = manager()
    app = create_app(m, {"home": str(tmp_path)}, lambda: None, access=SYSTEM, tokens=tokens)
    return app, Gateway(app, tokens), m


def token(app, peer, **body) -> str:
    answer = call(app, "POST", "/v1/tokens", body, peer=peer)
    assert answer.status == 201, answer.body
    return answer.json()["token"]


def bearer(text):
    return {"authorization": f"Bearer {text}"}


def submit(app, peer, command="true") -> int:
    body = {"jobs": [{"flags": {"command": command, "requests": {"cpu": "100m"}, "workdir": "/tmp"}}]}
    answer = call(app, "POST", "/v1/jobs", body, peer=peer)
    assert answer.status == 201, answer.body
    return answer.json()["jobs"][0]["id"]


def test_the_page_and_its_files_come_from_the_package(env):
    app, gw, m = env
    page = call(app, "GET", "/ui/")
    assert page.status == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store" and page.headers["x-content-type-options"] == "nosniff"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "unsafe-inline" not in csp
    html = page.body.decode()
    assert "/ui/static/app.js" in html and "/ui/static/app.css" in html
    assert "http://" not in html and "https://" not in html           # nothing from a CDN
    assert "<script>" not in html                                       # no inline code
    for name, kind in (("app.js", "text/javascript; charset=utf-8"), ("app.css", "text/css; charset=utf-8"),
                       ("favicon.svg", "image/svg+xml")):
        answer = call(app, "GET", f"/ui/static/{name}")
        assert (answer.status, answer.headers["content-type"]) == (200, kind), name
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.body == (ui.ASSETS / name).read_bytes()
    js = call(app, "GET", "/ui/static/app.js").body.decode().replace('"http://www.w3.org/2000/svg"', "SVG")
    assert "innerHTML" not in js and "http://" not in js and "https://" not in js   # text only; no CDN
    assert call(app, "GET", "/ui").status == 308


@pytest.mark.parametrize("name", ["..%2f..%2fconfig.py", "__init__.py", ".app.js", "app.js.map", "a" * 80 + ".js",
                                  "index.html", "nope.js", "..", "app%00.js"])
def test_only_the_pages_own_files_are_served(env, name):
    app, gw, m = env
    answer = call(app, "GET", f"/ui/static/{name}")
    assert answer.status == 404 and answer.json()["error"].startswith("no such dashboard file: ")
    assert len(answer.json()["lines"]) == 1


@pytest.mark.parametrize("path", ["/ui/static/../../api/ui.py", "/ui/static/sub/app.js", "/ui/static/"])
def test_folders_and_dot_dot_are_not_files(env, path):
    app, gw, m = env
    assert call(app, "GET", path).status == 404


def test_no_token_no_page(env):
    app, gw, m = env
    for path in ("/ui/", "/ui/static/app.js", "/v1/whoami", "/v1/ui/address"):
        answer = call(gw, "GET", path)
        assert answer.status == 401, path
        assert b"<html" not in answer.body and answer.json()["error"].startswith("no token")
    text = token(app, ALICE, scope="submit", expires="12h")
    answer = call(gw, "GET", f"/ui/?token={text}")
    assert answer.status == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"].split(";")[0]
    page = call(gw, "GET", "/ui/", headers={"cookie": cookie})
    assert page.status == 200 and b"/ui/static/app.js" in page.body
    assert call(gw, "GET", "/ui/static/app.js", headers={"cookie": cookie}).status == 200
    bad = call(gw, "GET", "/ui/", headers={"cookie": "corral_token=crl_000000000000_" + "A" * 43})
    assert bad.status == 401 and b"<html" not in bad.body


def test_whoami_says_what_the_page_may_offer(env):
    app, gw, m = env
    alice = call(gw, "GET", "/v1/whoami", headers=bearer(token(app, ALICE, scope="submit"))).json()
    assert alice == {"user": auth.user_name(61001), "uid": 61001, "admin": False, "scope": "submit",
                     "via": "token", "may_act": True, "expires": None}
    reader = call(gw, "GET", "/v1/whoami", headers=bearer(token(app, ALICE, scope="read"))).json()
    assert (reader["scope"], reader["may_act"], reader["admin"]) == ("read", False, False)
    root = call(gw, "GET", "/v1/whoami", headers=bearer(token(app, ROOT, scope="submit"))).json()
    assert (root["uid"], root["admin"], root["may_act"]) == (0, True, True)
    socket = call(app, "GET", "/v1/whoami", peer=BOB).json()
    assert (socket["uid"], socket["scope"], socket["via"], socket["may_act"]) == (61002, None, "socket", True)
    unknown = call(app, "GET", "/v1/whoami").json()        # system mode, no peer: nobody
    assert (unknown["uid"], unknown["admin"], unknown["may_act"]) == (None, False, False)


def test_the_address_is_the_configured_listener(tmp_path):
    m = manager()
    (tmp_path / "config.yaml").write_text("listen: 127.0.0.1:8765\n")
    app = create_app(m, {"home": str(tmp_path)}, lambda: None)
    assert call(app, "GET", "/v1/ui/address").json() == {
        "listen": "127.0.0.1:8765", "tls": False, "url": "http://127.0.0.1:8765/ui/"}
    six = create_app(manager(), {"home": str(tmp_path), "listen": "[::1]:9000", "tls": True}, lambda: None)
    assert call(six, "GET", "/v1/ui/address").json()["url"] == "https://[::1]:9000/ui/"
    none = create_app(manager(), {"home": str(tmp_path / "nowhere")}, lambda: None)
    assert call(none, "GET", "/v1/ui/address").json() == {"listen": None, "tls": False, "url": None}


def test_a_jobs_series_is_downsampled_and_bounded(env):
    app, gw, m = env
    job_id = submit(app, ALICE)
    rows = [UsageRow(job_id, 100.0 + 10 * i, 110.0 + 10 * i, cpu_seconds=5.0, memory=1000 + i, gpu_util=50.0,
                     energy_j=1000.0, gpu_seconds=10.0) for i in range(50)]
    m.store.record_usage(rows)
    out = call(app, "GET", f"/v1/ui/jobs/{job_id}/series?points=10").json()
    assert out["rows"] == 50 and len(out["points"]) == 10
    first = out["points"][0]
    assert first["cpu"] == pytest.approx(0.5) and first["memory"] == 1004 and first["gpu_util"] == pytest.approx(50.0)
    assert call(app, "GET", f"/v1/ui/jobs/{job_id}/series").json()["points"][-1]["memory"] == 1049
    for bad in ("points=0", f"points={ui.SERIES_MAX + 1}", "points=x"):
        answer = call(app, "GET", f"/v1/ui/jobs/{job_id}/series?{bad}")
        assert answer.status == 422 and "points" in answer.json()["error"], bad
    assert call(app, "GET", "/v1/ui/jobs/999/series").json()["error"] == "no such job: 999"


def test_a_log_tail_is_the_owners(env):
    app, gw, m = env
    job_id = submit(app, ALICE)
    mine = call(gw, "GET", f"/v1/ui/jobs/{job_id}/log", headers=bearer(token(app, ALICE, scope="read")))
    assert mine.status == 200 and mine.json()["offset"] == 0 and mine.json()["text"] == ""
    theirs = call(gw, "GET", f"/v1/ui/jobs/{job_id}/log", headers=bearer(token(app, BOB, scope="read")))
    assert theirs.status == 403 and theirs.json()["error"].startswith("permission denied")
    answer = call(app, "GET", f"/v1/ui/jobs/{job_id}/log?stream=stdin", peer=ALICE)
    assert answer.status == 422 and "stream" in answer.json()["error"]
    answer = call(app, "GET", f"/v1/ui/jobs/{job_id}/log?max={ui.LOG_MAX + 1}", peer=ALICE)
    assert answer.status == 422 and "max" in answer.json()["error"]


def test_usage_over_time_by_user_and_queue(env):
    app, gw, m = env
    a, b = submit(app, ALICE), submit(app, BOB)
    now = m.clock()
    m.store.record_usage([UsageRow(a, now - 3000, now - 2900, gpu_seconds=3600.0, idle_gpu_seconds=1800.0,
                                   energy_j=3.6e6),
                          UsageRow(b, now - 100, now - 50, gpu_seconds=7200.0)])
    out = call(app, "GET", "/v1/ui/usage/timeline?since=1h&by=user&buckets=6").json()
    alice, bob = auth.user_name(61001), auth.user_name(61002)
    assert out["keys"] == [bob, alice] and out["buckets"] == 6
    assert sum(out["series"][alice]["gpu_hours"]) == pytest.approx(1.0)
    assert sum(out["series"][alice]["wasted_gpu_hours"]) == pytest.approx(0.5)
    assert sum(out["series"][alice]["energy_kwh"]) == pytest.approx(1.0)
    assert out["series"][bob]["gpu_hours"][-1] == pytest.approx(2.0)
    assert out["series"][alice]["gpu_hours"][1] == pytest.approx(1.0)      # 50 min ago: the second bucket of six
    by_queue = call(app, "GET", "/v1/ui/usage/timeline?since=1h&by=queue").json()
    assert list(by_queue["series"]) == ["default"]
    # its lines and total are /v1/usage's, without reading every job in the store
    for by in ("user", "queue"):
        mine = call(app, "GET", f"/v1/ui/usage/timeline?since=1h&by={by}").json()
        full = call(app, "GET", f"/v1/usage?since=1h&by={by}").json()
        pick = lambda lines: [(l["key"], l["jobs"], round(l["energy_kwh"], 6)) for l in lines]  # noqa: E731
        assert pick(mine["lines"]) == pick(full["lines"]) and mine["lines"], by     # (the clock ticks per read)
        assert mine["total"]["jobs"] == full["total"]["jobs"] == 2
    for bad, field in (("since=soon", "since"), ("by=job", "by"), ("buckets=1000", "buckets")):
        answer = call(app, "GET", f"/v1/ui/usage/timeline?{bad}")
        assert answer.status == 422 and field in answer.json()["error"], bad
