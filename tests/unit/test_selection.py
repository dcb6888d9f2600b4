"""Choosing jobs: the CLI's strict id parsing, the store's JobFilter (both stores alike),
the daemon's resolution of ids/arrays/tasks/ranges/selectors, dependencies on whole
arrays, and cutting table cells to the terminal's width."""

from __future__ import annotations

import pytest

from manager_helpers import FakeExecutor
from manager_helpers import manager as make_manager

from corral.api.models import IdsRequest
from corral.cli import format as fmt
from corral.cli.ids import BadId, parse_one, parse_refs
from corral.daemon.selection import LIVE, PENDING, job_filter, resolve
from corral.errors import ValidationError
from corral.executors.base import ExitStatus
from corral.job import JobState, Reason
from corral.spec import build_spec, parse_dependencies
from corral.store import MemoryStore, SqliteStore
from corral.store.filters import JobFilter

GiB = 2**30


# -- the CLI's ids ----------------------------------------------------------------------------

def test_ids_ranges_tasks_and_lists():
    assert parse_refs(["12"]) == {"ids": [12]}
    assert parse_refs(["5_3"]) == {"tasks": [[5, 3]]}
    assert parse_refs(["12-20"]) == {"ranges": [[12, 20]]}
    assert parse_refs(["12,14,20-22", "7_0", "12"]) == {"ids": [12, 14], "tasks": [[7, 0]], "ranges": [[20, 22]]}
    assert parse_one("5_3") == {"tasks": [[5, 3]]}


@pytest.mark.parametrize("text", ["1_", "_1", "1__2", "1_2_3", "+1", " 1", "1.0", "0", "-3", "3-1", "1-", "a",
                                  "", "1,", "١٢", "99999999999999999999", "1_-2"])
def test_ids_are_strict(text):
    with pytest.raises(BadId) as exc:
        parse_refs([text])
    assert str(exc.value) == (f'invalid value for ID: "{text}" (expected job ids such as 12, an array task 12_3, '
                              "a range 12-20 or a list 12,14,20-22)")


def test_one_id_for_show():
    with pytest.raises(BadId, match="expected one job id"):
        parse_one("1-3")
    with pytest.raises(BadId, match="expected one job id"):
        parse_one("1,2")


def test_dependencies_take_array_tasks():
    assert parse_dependencies("12,afterany:13_2") == (("afterok", 12), ("afterany", "13_2"))
    assert parse_dependencies([{"type": "afternotok", "job": "4_0"}]) == (("afternotok", "4_0"),)
    for bad in ("1_", "1_2_3", "x_1", "1_x"):
        with pytest.raises(ValidationError, match="invalid value for after"):
            parse_dependencies(bad)


# -- the store's filter, both stores ---------------------------------------------------------

@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "c.db")
    yield s
    s.close()


def _add(store, name="", user="alice", queue=None, labels=None, array=None, index=None, now=100.0):
    from corral.job import Job

    spec = build_spec(["true"], name=name, labels=labels or {}, queue=queue)
    return store.add_jobs([Job(id=0, spec=spec, user=user, array_id=array, array_index=index)], now)[0]


def test_find_jobs_by_every_field(store):
    a = _add(store, name="sweep-1", labels={"team": "vision"}, now=100.0)
    b = _add(store, name="sweep-2", user="bob", now=200.0)
    c = _add(store, name="eval", queue="research", labels={"team": "nlp"}, now=300.0)
    ids = lambda **kw: [j.id for j in store.find_jobs(JobFilter(**kw))]  # noqa: E731
    assert ids() == [a.id, b.id, c.id]
    assert ids(name="sweep-*") == [a.id, b.id] and ids(name="sweep-[!1]") == [b.id] and ids(name="SWEEP*") == []
    assert ids(user="bob") == [b.id] and ids(queue="research") == [c.id]
    assert ids(labels=(("team", "vision"),)) == [a.id] and ids(labels=(("team", "x"),)) == []
    assert ids(since=200.0) == [b.id, c.id] and ids(id_min=2, id_max=2) == [b.id]
    assert ids(limit=2) == [a.id, b.id] and ids(limit=2, newest=True) == [b.id, c.id]
    assert ids(limit=0, newest=True) == [] and ids(states=frozenset()) == []
    assert ids(states=frozenset({JobState.PENDING}), user="alice") == [a.id, c.id]


def test_array_counts_and_tasks(store):
    from corral.job import Job

    spec = build_spec(["true"])
    tasks = store.add_jobs([Job(id=0, spec=spec, array_id=-1, array_index=i) for i in (0, 5, 7)], 1.0)
    head = tasks[0].id
    store.finish_job(tasks[1].id, JobState.CANCELLED, Reason.CANCELLED, ended_at=2.0)
    assert store.array_counts([head, 999]) == {head: {JobState.PENDING: 2, JobState.CANCELLED: 1}}
    assert [j.id for j in store.find_jobs(JobFilter(array=head, index=7))] == [tasks[2].id]


# -- resolution in the daemon -----------------------------------------------------------------

def refs(**kw) -> IdsRequest:
    return IdsRequest.model_validate(kw)


def test_an_array_id_is_every_task_and_id_index_one(store):
    from corral.job import Job

    plain = _add(store, name="plain")
    tasks = store.add_jobs([Job(id=0, spec=build_spec(["true"]), array_id=-1, array_index=i) for i in range(4)], 1.0)
    head = tasks[0].id
    store.finish_job(tasks[3].id, JobState.FAILED, Reason.ERROR, ended_at=2.0)
    pick = lambda states=None, **kw: [j.id for j in resolve(store, refs(**kw), me="alice", now=0.0,  # noqa: E731
                                                               states=states)[0]]
    assert pick(ids=[head]) == [t.id for t in tasks]
    assert pick(LIVE, ids=[head]) == [t.id for t in tasks[:3]]               # the ended task is left out ...
    assert pick(LIVE, tasks=[[head, 3]]) == [tasks[3].id]                    # ... unless named alone
    assert pick(tasks=[[head, 0]]) == [head]                                  # the first task alone
    assert pick(ranges=[[plain.id, head]]) == [plain.id] + [t.id for t in tasks]   # arrays in a range: whole
    assert pick(ranges=[[tasks[1].id, tasks[2].id]]) == [tasks[1].id, tasks[2].id]
    jobs, missing = resolve(store, refs(ids=[999], tasks=[[head, 9]]), me="", now=0.0)
    assert jobs == [] and missing == ["999", f"{head}_9"]
    assert pick(PENDING, selector={"array": head}) == [t.id for t in tasks[:3]]
    assert pick(selector={"name": "pl*"}) == [plain.id]
    assert pick(selector={"mine": True}) == [plain.id]                        # alice's
    assert pick(selector={"mine": True, "user": "bob"}) == []


def test_selector_errors_name_the_field():
    with pytest.raises(ValidationError, match='invalid value for selector.state: "Bogus"'):
        job_filter(states=["Bogus"], field="selector.")
    with pytest.raises(ValidationError, match="invalid window for since"):
        job_filter(since="5q")
    assert job_filter(states=["pending,Running"]).states == LIVE
    assert job_filter(since="2h", now=10_000.0).since == 10_000.0 - 7200


# -- dependencies on whole arrays (the manager, a fake executor) --------------------------------

def _manager():
    return make_manager(None, cores=8, gpus=0, memory=64 * GiB, tick=0.0)


def _end(m, job_id, code=0):
    m.on_exit(job_id, ExitStatus(ended_at=m.clock(), exit_code=code))


def _spec(**kw):
    return build_spec(["train"], requests={"cpu": "1"}, **kw)


def test_afterok_on_an_array_waits_for_every_task():
    m = _manager()
    tasks = m.submit([_spec(array="0-2")])
    [dep] = m.submit([_spec(dependencies=str(tasks[0].id))])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    _end(m, tasks[0].id)                                   # the first task (the array's id) ended ...
    _end(m, tasks[1].id)
    assert dep.id not in ex.order                          # ... not every task: it waits
    assert m.store.get_job(dep.id).message == f"waiting for array {tasks[0].id} (afterok; 2 of 3 tasks ended)"
    _end(m, tasks[2].id)
    assert dep.id in ex.order


def test_afterok_on_an_array_fails_as_soon_as_one_task_fails():
    m = _manager()
    tasks = m.submit([_spec(array="0-2")])
    [dep] = m.submit([_spec(dependencies=str(tasks[0].id))])
    _end(m, tasks[1].id, code=1)
    job = m.store.get_job(dep.id)
    assert (job.state, job.reason) == (JobState.CANCELLED, Reason.DEPENDENCY_FAILED)
    assert job.message == f"dependency afterok:{tasks[0].id} not met: 1 of the 3 tasks of array {tasks[0].id} " \
                          "did not succeed"


def test_afterany_and_afternotok_on_an_array():
    m = _manager()
    tasks = m.submit([_spec(array="0-1")])
    head = tasks[0].id
    [anyone] = m.submit([_spec(dependencies=f"afterany:{head}")])
    [notok] = m.submit([_spec(dependencies=f"afternotok:{head}")])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    _end(m, tasks[1].id, code=1)
    assert anyone.id not in ex.order and notok.id not in ex.order         # one task still runs
    _end(m, head)
    assert anyone.id in ex.order and notok.id in ex.order                  # all ended, one failed
    tasks = m.submit([_spec(array="0-1")])
    [notok] = m.submit([_spec(dependencies=f"afternotok:{tasks[0].id}")])
    for t in tasks:
        _end(m, t.id)
    assert m.store.get_job(notok.id).reason is Reason.DEPENDENCY_FAILED     # every task succeeded


def test_after_one_task_of_an_array():
    m = _manager()
    tasks = m.submit([_spec(array="0-2")])
    head = tasks[0].id
    [dep] = m.submit([_spec(dependencies=f"{head}_2")])
    assert m.store.get_job(dep.id).spec.dependencies == (("afterok", tasks[2].id),)
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    _end(m, tasks[2].id)
    assert dep.id in ex.order
    from corral.errors import Infeasible

    with pytest.raises(Infeasible, match=f"{head}_0 .the first task's job id is the array's id"):
        m.submit([_spec(dependencies=f"{head}_0")])
    with pytest.raises(Infeasible, match=f"{head}_7 .no such array task"):
        m.submit([_spec(dependencies=f"{head}_7")])


# -- table cells cut to the width -------------------------------------------------------------

def test_cells_are_cut_to_the_width():
    headers = ["ID", "NAME", "REASON"]
    rows = [["1", "a-very-long-name-indeed", "waiting for a long time because of many reasons"]]
    assert fmt.fit(headers, rows, 200, ("REASON", "NAME")) == rows
    cut = fmt.fit(headers, rows, 40, ("REASON", "NAME"))
    assert len(fmt.table(headers, cut).splitlines()[1]) <= 40
    assert cut[0][2].endswith("…") and cut[0][1] == rows[0][1]            # REASON gives way first
    tight = fmt.fit(headers, rows, 25, ("REASON", "NAME"))
    assert tight[0][1].endswith("…") and len(tight[0][2]) == 8


def test_a_big_arrays_dependents_are_not_recounted_at_every_end():
    class Counting(MemoryStore):
        calls = 0

        def array_counts(self, array_ids):
            Counting.calls += 1
            return super().array_counts(array_ids)

    store = Counting()
    m = make_manager(store, cores=200, gpus=0, memory=64 * GiB, tick=0.0)
    tasks = m.submit([build_spec(["train"], requests={"cpu": "1"}, array="0-99")])
    [dep] = m.submit([_spec(dependencies=f"afterany:{tasks[0].id}")])
    for t in tasks[1:]:
        _end(m, t.id)
    assert Counting.calls <= 25                                    # about once per twentieth, not 99 times
    assert m.store.get_job(dep.id).state is JobState.PENDING       # the first task still runs
    _end(m, tasks[0].id)
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    assert dep.id in ex.order
