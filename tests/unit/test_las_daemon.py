"""``policy: las`` in the daemon's manager (fake executor, virtual clock): a demoted
resumable job is preempted by service, its run kept as served time in the store and told
to its next attempt, the metric counts it; a job that does not checkpoint keeps running."""

from __future__ import annotations

import signal

from prometheus_client.parser import text_string_to_metric_families

from asgi_client import call
from corral.daemon.api import create_app
from corral.executors.base import ExitStatus, StopReason
from corral.job import JobState, Reason
from corral.spec import build_spec
from manager_helpers import Clock, manager


def spec(resumable=True):
    return build_spec(["train"], requests={"nvidia.com/gpu": 1, "cpu": "500m"}, resumable=resumable)


def preemptions(app) -> dict:
    text = call(app, "GET", "/metrics").body.decode()
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "corral_preemptions_total"}


def test_a_demoted_resumable_job_is_preempted_and_its_run_kept():
    clock = Clock(now=1000.0, tick=0.0)
    m = manager(gpus=1, policy="las", clock=clock)
    app = create_app(m, {"home": "/srv/corral"}, lambda: None)
    [a] = m.submit([spec()], {}, user="alice")
    assert m.executor.launched[a.id].env["CORRAL_SERVED"] == "0"
    clock.now += 100.0
    [b] = m.submit([spec(resumable=False)], {}, user="bob")
    assert m.executor.stopped == []                     # a is at level 0 still: b waits
    assert m.driver.next_change() == 1000.0 + 1800.0    # the daemon wakes then
    clock.now = 1000.0 + 1800.0
    m.cycle()                                           # the wake-up: a is demoted
    assert m.executor.stopped == [a.id] and m.executor.why[a.id] is StopReason.PREEMPT
    view = m.store.get_job(b.id)
    assert view.reason is Reason.PREEMPTING and "more attained service" in view.message
    assert preemptions(app) == {(("kind", "service"), ("queue", "default")): 1.0}
    clock.now += 1.0
    m.cycle()                                           # a still stops: b's claim holds, same reason
    assert "more attained service" in m.store.get_job(b.id).message
    assert m.executor.stopped == [a.id]                 # and no second preemption
    clock.now += 4.0                                    # it saves and exits on SIGTERM
    m.on_exit(a.id, ExitStatus(ended_at=clock.now, signal=signal.SIGTERM, stopped_for=StopReason.PREEMPT,
                               stop_message=f"preempted for job {b.id}"))
    m.lifecycle.flush()
    again = m.store.get_job(a.id)
    assert again.state is JobState.PENDING and again.served == 1805.0
    preempted = [e for e in m.store.events(a.id) if e.reason is Reason.PREEMPTED][-1]
    assert preempted.message.endswith("; resumes after 1805s run")
    m.cycle()
    assert b.id in m.executor.launched
    clock.now += 60.0
    m.on_exit(b.id, ExitStatus(ended_at=clock.now, exit_code=0))
    m.lifecycle.flush()
    m.cycle()
    assert m.executor.launched[a.id].env["CORRAL_SERVED"] == "1805"     # resume from its checkpoint
    assert m.store.get_job(a.id).attempts == 2


def test_a_job_that_does_not_checkpoint_is_never_preempted_by_service():
    clock = Clock(now=1000.0, tick=0.0)
    m = manager(gpus=1, policy="las", clock=clock)
    [a] = m.submit([spec(resumable=False)], {}, user="alice")
    assert "CORRAL_SERVED" not in m.executor.launched[a.id].env
    [b] = m.submit([spec()], {}, user="bob")
    clock.now += 10 * 86400.0
    m.cycle()
    assert m.executor.stopped == [] and m.store.get_job(b.id).state is JobState.PENDING
