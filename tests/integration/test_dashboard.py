"""The web dashboard in a real browser (Playwright driving Debian's chromium) against a
real system-mode daemon with a TCP listener and simulated GPUs.

Two real users (``crlalice``, ``crlbob``, made by chaos/users.py as in
test_cli_users.py) submit through the socket; alice runs ``corral ui`` and opens its link.
Covered: no token, no page; the queue with running and pending jobs, a pending job's
reason; a job submitted after the page loaded appears without a reload (server-sent
events); a cancel from the page cancels (checked with the CLI); bob's job offers alice
no cancel button; the job page (spec, events, log tail, charts), nodes & GPUs, usage.
Screenshots go to docs/img/dashboard-*.png (1280x800).

Needs root (the users, a system daemon), Playwright and chromium (installed with apt-get
when missing and root): skipped otherwise, a failure under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from corral_harness import CORRAL, Corral, make_corral, teardown, wait_until

sys.path.append(str(Path(__file__).resolve().parents[2] / "chaos"))
import users as test_users  # noqa: E402
from users import ADMIN_GROUP, ALICE, BOB, GROUP  # noqa: E402

CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
VIEWPORT = {"width": 1280, "height": 800}
#: Generous: the machine is small; nothing here is a timing assertion.
WAIT_MS = 30_000


def unavailable(reason: str):
    if CI:
        pytest.fail(f"{reason} (CI=true: this test must run in CI)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module (installed once with apt-get when missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install 'corral[test]')")
    if not os.path.exists(CHROMIUM):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            unavailable(f"{CHROMIUM} is missing (apt-get install chromium, as root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        res = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, text=True,
                             timeout=900, env=env)
        if res.returncode != 0:          # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
            res = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, text=True,
                                 timeout=900, env=env)
        if res.returncode != 0 or not os.path.exists(CHROMIUM):
            unavailable(f"cannot install chromium: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    pw = sync_playwright().start()
    try:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        except Exception as exc:  # noqa: BLE001 - a browser that cannot start here
            unavailable(f"chromium does not start: {str(exc).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


class Dash:
    """The daemon, its dashboard address, and the CLI as each test user."""

    def __init__(self, c: Corral, port: int, argv: list[str], extra: dict[str, str], workdir: str):
        self.c, self.port, self.argv, self.extra, self.workdir = c, port, argv, extra, workdir
        self.base = f"http://127.0.0.1:{port}"

    def run(self, user: str, *args: str) -> subprocess.CompletedProcess:
        assigns = [f"CORRAL_HOME={self.c.home}", "PYTHONDONTWRITEBYTECODE=1",
                   *(f"{k}={v}" for k, v in self.extra.items())]
        env = {k: v for k, v in self.c.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        return subprocess.run(["runuser", "-u", user, "--", "env", *assigns, *self.argv, *args],
                              capture_output=True, text=True, env=env, cwd=self.workdir, timeout=60)

    def ok(self, user: str, *args: str) -> str:
        res = self.run(user, *args)
        assert res.returncode == 0, f"`corral {' '.join(args)}` as {user}: {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    def submit(self, user: str, *args: str) -> int:
        return json.loads(self.ok(user, "submit", "--json", "--cpus", "100m", *args))["id"]

    def link(self, user: str) -> str:
        """What ``corral ui`` prints for ``user``: the page's address with a token."""
        out = self.ok(user, "ui", "--no-browser").strip().splitlines()
        assert len(out) == 1 and out[0].startswith(f"{self.base}/ui/?token=crl_"), out
        return out[0]


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    if os.geteuid() != 0:
        unavailable("needs root: two real users submit to a system-mode daemon")
    try:
        test_users.ensure_users()
        argv, extra = test_users.user_cli(CORRAL)
    except test_users.Unavailable as exc:
        unavailable(str(exc))
    c = make_corral(str(tmp_path_factory.mktemp("dash")))
    workroot = tempfile.mkdtemp(prefix="crldash", dir="/tmp")
    os.chmod(workroot, 0o755)                       # every test user may enter it
    port = _free_port()
    try:
        c.write_config(f"socket_group: {GROUP}\nadmin_group: {ADMIN_GROUP}\nlisten: 127.0.0.1:{port}\n"
                       "rate_limit: 1000\n"
                       "sample_interval: 0.5\nseries_interval: 1s\n"
                       "cost: {nvidia.com/gpu: 2.5, energy: 0.3, currency: EUR}\n")
        values = {str(i): {"utilization": u, "memory_used": m, "power": p}
                  for i, (u, m, p) in enumerate([(87, "30Gi", 310.0), (64, "22Gi", 260.0), (3, "1Gi", 70.0),
                                                 (0, "0", 55.0)])}
        Path(c.home, "simulated-gpus.json").write_text(json.dumps(values))
        c.up("--simulate-gpus", "4")
        yield Dash(c, port, argv, extra, workroot)
    finally:
        try:
            left = [str(j["id"]) for j in c.ps()]
            if left:
                c.run("cancel", *left)
                c.run("wait", *left, timeout=60)
        finally:
            teardown(c)
            shutil.rmtree(workroot, ignore_errors=True)


@pytest.fixture(scope="module")
def jobs(dash):
    """Alice: a training job on 2 GPUs printing lines, a job to cancel, a job waiting for
    4 GPUs; bob: a job on 1 GPU."""
    d = dash
    train = d.submit(ALICE, "--name", "train-resnet", "--gpus", "2", "--mem", "256Mi", "--",
                     "sh", "-c", "i=0; while true; do i=$((i+1)); echo step $i loss 0.$((1000 - i)); sleep 0.5; done")
    doomed = d.submit(ALICE, "--name", "sweep-lr", "--", "sleep", "600")
    bobs = d.submit(BOB, "--name", "bob-eval", "--gpus", "1", "--", "sleep", "600")
    for job_id in (train, doomed, bobs):
        d.c.wait_state(job_id, "Running")
    waiting = d.submit(ALICE, "--name", "big-finetune", "--gpus", "4", "--", "sleep", "600")
    view = d.c.show_when(waiting, lambda v: v["state"] == "Pending" and v.get("message"), "a pending reason")
    return {"train": train, "doomed": doomed, "bobs": bobs, "waiting": waiting, "waiting_view": view}


def _open(browser, dash, user: str = ALICE):
    """A fresh browser context signed in by ``corral ui``'s link (the page's own CSP stays on:
    the test waits with locators, never by evaluating strings)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(dash.link(user))
    assert page.url == f"{dash.base}/ui/"                   # the token is out of the address bar
    page.wait_for_selector("#live:not(.off)")               # the event stream is open
    return context, page, errors


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def test_no_token_no_page(dash, browser):
    try:
        urllib.request.urlopen(f"{dash.base}/ui/", timeout=30)
        raise AssertionError("the page was served without a token")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401 and b"<html" not in exc.read()
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        answer = page.goto(f"{dash.base}/ui/")
        assert answer.status == 401
        assert page.query_selector("#main") is None and "no token" in page.content()
        assert page.goto(f"{dash.base}/ui/static/app.js").status == 401
    finally:
        context.close()


def test_queue_shows_running_and_pending_jobs_and_only_allowed_actions(dash, browser, jobs):
    context, page, errors = _open(browser, dash)
    try:
        page.wait_for_selector(f"tr[data-job='{jobs['waiting']}']")
        train = page.locator(f"tr[data-job='{jobs['train']}']")
        assert train.get_attribute("data-state") == "Running"
        text = train.inner_text()
        assert "train-resnet" in text and ALICE in text and dash.c.node()["name"] in text
        gpus = ",".join(str(g) for g in dash.c.show(jobs["train"])["gpus"])
        assert gpus in text
        pending = page.locator(f"tr[data-job='{jobs['waiting']}']")
        assert pending.get_attribute("data-state") == "Pending"
        reason = pending.locator("[data-reason]")
        assert reason.get_attribute("data-reason") == jobs["waiting_view"]["reason"]
        assert reason.inner_text().strip() == jobs["waiting_view"]["message"].strip()
        assert pending.inner_text().count("#") >= 1                         # its position in the queue
        # alice's own jobs offer her actions; bob's offer none
        assert train.locator("button[data-action='cancel']").count() == 1
        assert pending.locator("button[data-action='hold']").count() == 1
        bobs = page.locator(f"tr[data-job='{jobs['bobs']}']")
        assert BOB in bobs.inner_text()
        assert bobs.locator("button").count() == 0
        page.screenshot(path=str(SHOTS / "dashboard-queue.png"))
        assert errors == []
    finally:
        context.close()


def test_a_job_submitted_later_appears_without_a_reload(dash, browser, jobs):
    context, page, errors = _open(browser, dash)
    try:
        page.wait_for_selector(f"tr[data-job='{jobs['train']}']")
        page.evaluate("window.__same_page = true")
        late = dash.submit(BOB, "--name", "late-arrival", "--gpus", "4", "--", "sleep", "600")
        row = page.wait_for_selector(f"tr[data-job='{late}']")
        assert "late-arrival" in row.inner_text()
        assert page.evaluate("window.__same_page") is True                  # no reload happened
        dash.ok(BOB, "cancel", str(late))
        page.wait_for_selector(f"tr[data-job='{late}'][data-state='Cancelled']")
        assert page.evaluate("window.__same_page") is True
        assert errors == []
    finally:
        context.close()


def test_cancel_from_the_page_cancels(dash, browser, jobs):
    context, page, errors = _open(browser, dash)
    try:
        button = page.locator(f"tr[data-job='{jobs['doomed']}'] button[data-action='cancel']")
        button.click()
        assert button.inner_text() == "Confirm"                             # asks once more
        button.click()
        view = dash.c.wait_state(jobs["doomed"], "Cancelled")
        assert view["state"] == "Cancelled"
        page.wait_for_selector(f"tr[data-job='{jobs['doomed']}'][data-state='Cancelled']")
        assert errors == []
    finally:
        context.close()


def test_the_job_page_shows_spec_events_log_and_charts(dash, browser, jobs):
    train = jobs["train"]
    # A few usage rows first (one a second), so the charts have a line.
    wait_until(lambda: len(dash.c.show(train)["events"]) and (dash.c.show(train).get("usage") or {}).get("rows", 0) >= 4,
               what="the training job's usage rows")
    context, page, errors = _open(browser, dash)
    try:
        page.goto(f"{dash.base}/ui/#/job/{train}")
        expect(page.locator("#log")).to_contain_text(re.compile(r"step \d+ loss"))
        body = page.inner_text("main")
        assert f"Job {train}" in body and "train-resnet" in body and "Running" in body
        assert "sh -c" in body and "Events" in body and "Pending" in body
        assert page.locator(".chart path").count() >= 3                     # CPU, memory, GPU lines
        before = page.inner_text("#log")
        expect(page.locator("#log")).not_to_have_text(before)               # the tail follows the log
        page.screenshot(path=str(SHOTS / "dashboard-job.png"))
        # bob's job: no actions for alice, and its log is not hers to read
        page.goto(f"{dash.base}/ui/#/job/{jobs['bobs']}")
        page.wait_for_selector("text=bob-eval")
        expect(page.locator("#log")).to_contain_text("owner")
        assert page.locator("main button[data-action]").count() == 0
        assert errors == []
    finally:
        context.close()


def test_nodes_and_gpus_show_holders_and_readings(dash, browser, jobs):
    context, page, errors = _open(browser, dash)
    try:
        page.goto(f"{dash.base}/ui/#/nodes")
        page.wait_for_selector(".gpu")
        holders = dash.c.gpu_holders()
        for index, job_id in holders.items():
            card = page.locator(f".gpu[data-gpu='{index}']")
            text = card.inner_text()
            assert (f"job {job_id}" in text) if job_id else ("free" in text), (index, text)
        expect(page.locator(".gpu[data-gpu='0']")).to_contain_text("87%")
        assert "310 W" in page.locator(".gpu[data-gpu='0']").inner_text()
        page.screenshot(path=str(SHOTS / "dashboard-nodes.png"))
        assert errors == []
    finally:
        context.close()


def test_usage_charts_by_user_and_queue(dash, browser, jobs):
    context, page, errors = _open(browser, dash)
    try:
        page.goto(f"{dash.base}/ui/#/usage")
        try:
            page.wait_for_selector("text=GPU-hours by user")
        except Exception:  # noqa: BLE001 - say what the page shows instead
            pytest.fail(f"the usage page did not render; it shows {page.inner_text('main')[:500]!r}; "
                        f"page errors: {errors}")
        page.wait_for_selector(".chart rect")                               # some bars
        body = page.inner_text("main")
        assert "By user" in body and "By queue" in body and ALICE in body and "default" in body
        page.screenshot(path=str(SHOTS / "dashboard-usage.png"))
        assert errors == []
    finally:
        context.close()
