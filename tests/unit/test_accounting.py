"""Accounting: held time clipped to the window, billing per resource, usage rows pro rata, cost."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.job import Allocation, Job, JobState, Reason
from corral.monitor.accounting import UsageLine, account, held_seconds, price, totals
from corral.resources import GPU, Resources
from corral.spec import JobSpec
from corral.store.base import UsageRow

H = 3600.0
GIB = 1 << 30
SINCE = 1_000_000.0          # the window is [SINCE, NOW], one day
NOW = SINCE + 24 * H
RATES = {"cpu": 0.05, "memory": 0.01, GPU: 2.5, "energy": 0.2}


def make_job(job_id: int, *, user: str = "alice", name: str = "train", start: float | None = SINCE + H,
             end: float | None = None, cpu: str = "4", memory: str = "16Gi", gpus: int = 0,
             allocated: bool = True) -> Job:
    amounts: dict[str, object] = {"cpu": cpu, "memory": memory}
    if gpus:
        amounts["gpu"] = gpus
    requests = Resources.parse(amounts)
    spec = JobSpec(command=("python", "train.py"), name=name, requests=requests, limits=requests)
    if start is None:
        state, reason = JobState.PENDING, Reason.QUEUED
    elif end is None:
        state, reason = JobState.RUNNING, Reason.LAUNCHED
    else:
        state, reason = JobState.SUCCEEDED, Reason.COMPLETED
    allocation = (Allocation(node="node-1", requests=requests, gpus=tuple(range(gpus)))
                  if allocated and start is not None else None)
    return Job(id=job_id, spec=spec, state=state, reason=reason, submitted_at=SINCE, started_at=start,
               ended_at=end, allocation=allocation, seq=job_id, user=user)


def rows_for(job_id: int, start: float, end: float, *, interval: float = 1800.0, **per_second) -> list[UsageRow]:
    """Rows covering [start, end] in ``interval`` steps, amounts at a constant rate per second."""
    out = []
    t = start
    while t < end:
        t1 = min(t + interval, end)
        out.append(UsageRow(job_id=job_id, t0=t, t1=t1, **{k: v * (t1 - t) for k, v in per_second.items()}))
        t = t1
    return out


def only(lines: list[UsageLine]) -> UsageLine:
    assert len(lines) == 1
    return lines[0]


# -- held_seconds ------------------------------------------------------------------------

class TestHeldSeconds:
    def test_inside_the_window(self):
        assert held_seconds(make_job(1, start=SINCE + H, end=SINCE + 3 * H), SINCE, NOW) == 2 * H

    def test_started_before_the_window_is_clipped_to_since(self):
        assert held_seconds(make_job(1, start=SINCE - 5 * H, end=SINCE + H), SINCE, NOW) == H

    def test_still_running_counts_up_to_now(self):
        assert held_seconds(make_job(1, start=NOW - 90, end=None), SINCE, NOW) == 90

    def test_running_across_the_whole_window(self):
        assert held_seconds(make_job(1, start=SINCE - 100 * H, end=None), SINCE, NOW) == 24 * H

    def test_ended_after_now_is_clipped_to_now(self):
        assert held_seconds(make_job(1, start=NOW - H, end=NOW + H), SINCE, NOW) == H

    def test_ended_before_the_window_is_zero(self):
        assert held_seconds(make_job(1, start=SINCE - 3 * H, end=SINCE - H), SINCE, NOW) == 0.0

    def test_ended_exactly_at_since_is_zero(self):
        assert held_seconds(make_job(1, start=SINCE - H, end=SINCE), SINCE, NOW) == 0.0

    def test_started_after_now_is_zero(self):
        assert held_seconds(make_job(1, start=NOW + H, end=None), SINCE, NOW) == 0.0

    def test_never_started_is_zero(self):
        assert held_seconds(make_job(1, start=None), SINCE, NOW) == 0.0

    @settings(max_examples=200, deadline=None)
    @given(st.floats(-1e5, 1e5), st.one_of(st.none(), st.floats(0, 1e5)), st.floats(0, 1e5))
    def test_never_negative_never_more_than_the_window(self, start, ran_for, window):
        end = None if ran_for is None else start + ran_for
        job = make_job(1, start=start, end=end)
        held = held_seconds(job, 0.0, window)
        assert 0.0 <= held <= window
        if end is not None:
            assert held <= ran_for + 1e-9


# -- the worked example ------------------------------------------------------------------

def alice_example() -> tuple[Job, list[UsageRow]]:
    """alice: 2 GPUs, 4 CPUs, 16Gi for exactly 2 h inside the window; GPUs idle 30 min; 300 W per GPU."""
    start, end = SINCE + 4 * H, SINCE + 6 * H
    job = make_job(7, user="alice", name="resnet", start=start, end=end, cpu="4", memory="16Gi", gpus=2)
    rows = rows_for(7, start, end, interval=1800, cpu_seconds=3.0, energy_j=2 * 300.0, gpu_seconds=2.0)
    # one 30-minute row in which both GPUs were idle
    rows[1] = UsageRow(job_id=7, t0=rows[1].t0, t1=rows[1].t1, cpu_seconds=rows[1].cpu_seconds,
                       energy_j=rows[1].energy_j, gpu_seconds=rows[1].gpu_seconds, idle_gpu_seconds=2 * 1800)
    return job, rows


class TestAliceExample:
    def test_numbers(self):
        job, rows = alice_example()
        line = only(account([job], rows, since=SINCE, now=NOW))
        assert line.key == "alice"
        assert line.jobs == 1
        assert line.hours == pytest.approx(2.0)
        assert line.gpu_hours == pytest.approx(4.0)
        assert line.cpu_hours == pytest.approx(8.0)
        assert line.memory_gib_hours == pytest.approx(32.0)
        assert line.wasted_gpu_hours == pytest.approx(1.0)
        assert line.energy_kwh == pytest.approx(1.2)
        assert line.cpu_used_hours == pytest.approx(6.0)       # 3 cores busy on average
        assert line.cpu_efficiency == pytest.approx(0.75)
        assert line.cost is None                                # no rates, no cost
        assert line.name == "" and line.user == ""              # by user: not filled

    def test_cost(self):
        job, rows = alice_example()
        line = only(account([job], rows, since=SINCE, now=NOW, cost=RATES))
        assert line.cost == pytest.approx(0.4 + 0.32 + 10.0 + 0.24)
        assert line.cost == pytest.approx(10.96)

    def test_price_parts(self):
        job, rows = alice_example()
        line = only(account([job], rows, since=SINCE, now=NOW))
        assert price(line, {"cpu": 0.05}) == pytest.approx(0.4)
        assert price(line, {"memory": 0.01}) == pytest.approx(0.32)
        assert price(line, {GPU: 2.5}) == pytest.approx(10.0)
        assert price(line, {"energy": 0.2}) == pytest.approx(0.24)
        assert price(line, {}) == 0.0
        # the config's rates carry a currency name beside the numbers; it is not a rate
        assert price(line, {**RATES, "currency": "USD"}) == pytest.approx(10.96)

    def test_by_job(self):
        job, rows = alice_example()
        line = only(account([job], rows, since=SINCE, now=NOW, by="job"))
        assert line.key == "7"
        assert line.name == "resnet" and line.user == "alice"
        assert line.gpu_hours == pytest.approx(4.0)
        assert line.wasted_gpu_hours == pytest.approx(1.0)

    def test_to_dict(self):
        job, rows = alice_example()
        data = only(account([job], rows, since=SINCE, now=NOW, by="job", cost=RATES)).to_dict()
        assert data["key"] == "7"
        assert data["name"] == "resnet" and data["user"] == "alice"
        assert data["gpu_hours"] == pytest.approx(4.0)
        assert data["cost"] == pytest.approx(10.96)
        assert data["cpu_efficiency"] == pytest.approx(0.75)
        assert set(data) == {"key", "jobs", "hours", "cpu_hours", "cpu_used_hours", "memory_gib_hours",
                             "gpu_hours", "energy_kwh", "wasted_gpu_hours", "cost", "name", "user",
                             "cpu_efficiency"}


# -- clipping jobs to the window ---------------------------------------------------------

class TestWindow:
    def test_job_started_before_the_window_is_billed_from_since(self):
        job = make_job(1, start=SINCE - 2 * H, end=SINCE + H, cpu="2", memory="1Gi", gpus=1)
        line = only(account([job], [], since=SINCE, now=NOW))
        assert line.hours == pytest.approx(1.0)
        assert line.cpu_hours == pytest.approx(2.0)
        assert line.memory_gib_hours == pytest.approx(1.0)
        assert line.gpu_hours == pytest.approx(1.0)

    def test_running_job_is_billed_up_to_now(self):
        job = make_job(1, start=NOW - 0.5 * H, end=None, cpu="500m", memory="512Mi")
        line = only(account([job], [], since=SINCE, now=NOW))
        assert line.hours == pytest.approx(0.5)
        assert line.cpu_hours == pytest.approx(0.25)
        assert line.memory_gib_hours == pytest.approx(0.25)
        assert line.gpu_hours == 0.0

    def test_excluded_jobs(self):
        jobs = [
            make_job(1, user="old", start=SINCE - 3 * H, end=SINCE - H),     # ended before the window
            make_job(2, user="pending", start=None),                        # never started
            make_job(3, user="unallocated", start=SINCE + H, allocated=False),  # no allocation
            make_job(4, user="future", start=NOW + 10, end=None),           # starts after now
        ]
        rows = [UsageRow(job_id=j, t0=SINCE + H, t1=SINCE + 2 * H, cpu_seconds=100.0) for j in (1, 2, 3, 4)]
        assert account(jobs, rows, since=SINCE, now=NOW) == []
        assert account(jobs, rows, since=SINCE, now=NOW, by="job") == []

    def test_empty(self):
        assert account([], [], since=SINCE, now=NOW) == []
        assert account([], [], since=SINCE, now=NOW, cost=RATES) == []


# -- grouping ----------------------------------------------------------------------------

class TestGrouping:
    def jobs(self) -> list[Job]:
        return [
            make_job(1, user="alice", name="a1", start=SINCE + H, end=SINCE + 2 * H, cpu="1", memory="1Gi"),
            make_job(2, user="alice", name="a2", start=SINCE + H, end=SINCE + 3 * H, cpu="2", memory="2Gi",
                     gpus=1),
            make_job(3, user="bob", name="b1", start=SINCE + H, end=SINCE + 4 * H, cpu="1", memory="1Gi"),
        ]

    def test_by_user_sums_the_jobs_of_each_user(self):
        lines = {line.key: line for line in account(self.jobs(), [], since=SINCE, now=NOW)}
        assert set(lines) == {"alice", "bob"}
        alice, bob = lines["alice"], lines["bob"]
        assert alice.jobs == 2
        assert alice.hours == pytest.approx(3.0)
        assert alice.cpu_hours == pytest.approx(1 * 1 + 2 * 2)
        assert alice.memory_gib_hours == pytest.approx(1 * 1 + 2 * 2)
        assert alice.gpu_hours == pytest.approx(2.0)
        assert bob.jobs == 1
        assert bob.hours == pytest.approx(3.0)
        assert bob.cpu_hours == pytest.approx(3.0)
        assert bob.gpu_hours == 0.0
        assert all(line.name == "" and line.user == "" for line in lines.values())

    def test_by_job_one_line_per_job_with_name_and_user(self):
        lines = {line.key: line for line in account(self.jobs(), [], since=SINCE, now=NOW, by="job")}
        assert set(lines) == {"1", "2", "3"}
        assert (lines["1"].name, lines["1"].user) == ("a1", "alice")
        assert (lines["2"].name, lines["2"].user) == ("a2", "alice")
        assert (lines["3"].name, lines["3"].user) == ("b1", "bob")
        assert all(line.jobs == 1 for line in lines.values())
        assert lines["2"].cpu_hours == pytest.approx(4.0)

    def test_rows_go_to_their_job_line(self):
        rows = [UsageRow(job_id=1, t0=SINCE + H, t1=SINCE + 2 * H, cpu_seconds=1800.0),
                UsageRow(job_id=3, t0=SINCE + H, t1=SINCE + 2 * H, cpu_seconds=3600.0),
                UsageRow(job_id=99, t0=SINCE + H, t1=SINCE + 2 * H, cpu_seconds=1e9)]   # unknown job
        by_user = {line.key: line for line in account(self.jobs(), rows, since=SINCE, now=NOW)}
        assert by_user["alice"].cpu_used_hours == pytest.approx(0.5)
        assert by_user["bob"].cpu_used_hours == pytest.approx(1.0)
        by_job = {line.key: line for line in account(self.jobs(), rows, since=SINCE, now=NOW, by="job")}
        assert by_job["1"].cpu_used_hours == pytest.approx(0.5)
        assert by_job["2"].cpu_used_hours == 0.0
        assert by_job["3"].cpu_used_hours == pytest.approx(1.0)

    def test_job_without_user_is_grouped_under_question_mark(self):
        job = make_job(1, user="", start=SINCE + H, end=SINCE + 2 * H)
        assert only(account([job], [], since=SINCE, now=NOW)).key == "?"
        assert only(account([job], [], since=SINCE, now=NOW, by="job")).user == ""

    @pytest.mark.parametrize("by", ["users", "node", "", "User", None])
    def test_invalid_grouping(self, by):
        with pytest.raises(ValueError, match="by must be one of user, job"):
            account([], [], since=SINCE, now=NOW, by=by)


# -- usage rows --------------------------------------------------------------------------

class TestRows:
    def job(self) -> Job:
        return make_job(1, start=SINCE - 10 * H, end=None, cpu="2", memory="1Gi", gpus=1)

    def test_row_across_since_counts_pro_rata(self):
        row = UsageRow(job_id=1, t0=SINCE - 600, t1=SINCE + 600, cpu_seconds=1200.0, energy_j=7.2e6,
                       idle_gpu_seconds=1200.0)
        line = only(account([self.job()], [row], since=SINCE, now=NOW))
        assert line.cpu_used_hours == pytest.approx(600 / H)
        assert line.energy_kwh == pytest.approx(1.0)
        assert line.wasted_gpu_hours == pytest.approx(600 / H)

    def test_row_across_now_counts_pro_rata(self):
        row = UsageRow(job_id=1, t0=NOW - 900, t1=NOW + 2700, cpu_seconds=3600.0, energy_j=3.6e6,
                       idle_gpu_seconds=3600.0)
        line = only(account([self.job()], [row], since=SINCE, now=NOW))
        assert line.cpu_used_hours == pytest.approx(0.25)
        assert line.energy_kwh == pytest.approx(0.25)
        assert line.wasted_gpu_hours == pytest.approx(0.25)

    def test_rows_outside_the_window_do_not_count(self):
        rows = [UsageRow(job_id=1, t0=SINCE - 2 * H, t1=SINCE - H, cpu_seconds=3600.0, energy_j=1e9),
                UsageRow(job_id=1, t0=SINCE - H, t1=SINCE, cpu_seconds=3600.0, energy_j=1e9),   # ends at since
                UsageRow(job_id=1, t0=NOW, t1=NOW + H, cpu_seconds=3600.0, energy_j=1e9)]       # starts at now
        line = only(account([self.job()], rows, since=SINCE, now=NOW))
        assert line.cpu_used_hours == 0.0
        assert line.energy_kwh == 0.0
        assert line.wasted_gpu_hours == 0.0

    def test_zero_length_row_inside_the_window_counts_whole(self):
        row = UsageRow(job_id=1, t0=SINCE + H, t1=SINCE + H, cpu_seconds=36.0, energy_j=3.6e6)
        line = only(account([self.job()], [row], since=SINCE, now=NOW))
        assert line.cpu_used_hours == pytest.approx(0.01)
        assert line.energy_kwh == pytest.approx(1.0)

    def test_energy_joules_to_kwh(self):
        rows = rows_for(1, SINCE, SINCE + 10 * H, interval=30, energy_j=1000.0)   # 1 kW for 10 h
        line = only(account([self.job()], rows, since=SINCE, now=NOW))
        assert line.energy_kwh == pytest.approx(10.0)

    def test_wasted_gpu_hours(self):
        rows = rows_for(1, SINCE, SINCE + 4 * H, interval=30, idle_gpu_seconds=0.5)  # idle half the time
        line = only(account([self.job()], rows, since=SINCE, now=NOW))
        assert line.wasted_gpu_hours == pytest.approx(2.0)
        assert line.gpu_hours == pytest.approx(24.0)

    def test_cpu_efficiency(self):
        rows = rows_for(1, SINCE, NOW, interval=30, cpu_seconds=0.5)   # half a core of two, all day
        line = only(account([self.job()], rows, since=SINCE, now=NOW))
        assert line.cpu_hours == pytest.approx(48.0)
        assert line.cpu_used_hours == pytest.approx(12.0)
        assert line.cpu_efficiency == pytest.approx(0.25)

    def test_cpu_efficiency_is_none_without_cpu_hours(self):
        job = make_job(1, start=SINCE + H, end=SINCE + 2 * H, cpu="0", memory="1Gi", gpus=1)
        line = only(account([job], [], since=SINCE, now=NOW))
        assert line.cpu_hours == 0.0
        assert line.cpu_efficiency is None
        assert line.to_dict()["cpu_efficiency"] is None

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.floats(-2 * H, 26 * H), st.floats(1, 5 * H), st.floats(0, 1e5)),
                    max_size=20))
    def test_rows_never_count_more_than_their_amounts(self, spans):
        rows = [UsageRow(job_id=1, t0=SINCE + a, t1=SINCE + a + d, cpu_seconds=c, energy_j=c,
                         idle_gpu_seconds=c) for a, d, c in spans]
        line = only(account([self.job()], rows, since=SINCE, now=NOW))
        total = sum(c for _, _, c in spans)
        assert 0.0 <= line.cpu_used_hours <= total / H + 1e-9
        assert 0.0 <= line.energy_kwh <= total / 3.6e6 + 1e-9
        # what lies wholly inside the window counts in full
        inside = sum(c for a, d, c in spans if a >= 0 and a + d <= 24 * H)
        assert line.cpu_used_hours >= inside / H - 1e-6


# -- ordering, totals --------------------------------------------------------------------

class TestOrderingAndTotals:
    def test_gpu_hours_then_cpu_hours_then_key(self):
        start, end = SINCE + H, SINCE + 2 * H
        jobs = [
            make_job(1, user="cpu-heavy", start=start, end=end, cpu="64"),
            make_job(2, user="one-gpu", start=start, end=end, cpu="1", gpus=1),
            make_job(3, user="two-gpus", start=start, end=end, cpu="1", gpus=2),
            make_job(4, user="one-gpu-more-cpu", start=start, end=end, cpu="8", gpus=1),
            make_job(5, user="bbb", start=start, end=end, cpu="2"),
            make_job(6, user="aaa", start=start, end=end, cpu="2"),
        ]
        keys = [line.key for line in account(jobs, [], since=SINCE, now=NOW)]
        assert keys == ["two-gpus", "one-gpu-more-cpu", "one-gpu", "cpu-heavy", "aaa", "bbb"]

    def test_by_job_ties_are_ordered_by_key_text(self):
        start, end = SINCE + H, SINCE + 2 * H
        jobs = [make_job(i, start=start, end=end, cpu="1") for i in (3, 1, 2)]
        assert [line.key for line in account(jobs, [], since=SINCE, now=NOW, by="job")] == ["1", "2", "3"]

    def test_totals(self):
        job, rows = alice_example()
        bob = make_job(8, user="bob", start=SINCE + H, end=SINCE + 2 * H, cpu="2", memory="4Gi")
        bob_rows = [UsageRow(job_id=8, t0=SINCE + H, t1=SINCE + 2 * H, cpu_seconds=3600.0)]
        lines = account([job, bob], rows + bob_rows, since=SINCE, now=NOW, cost=RATES)
        assert [line.key for line in lines] == ["alice", "bob"]
        total = totals(lines)
        assert total.key == "total"
        assert total.jobs == 2
        assert total.hours == pytest.approx(3.0)
        assert total.cpu_hours == pytest.approx(10.0)
        assert total.cpu_used_hours == pytest.approx(7.0)
        assert total.memory_gib_hours == pytest.approx(36.0)
        assert total.gpu_hours == pytest.approx(4.0)
        assert total.energy_kwh == pytest.approx(1.2)
        assert total.wasted_gpu_hours == pytest.approx(1.0)
        assert total.cost == pytest.approx(10.96 + 2 * 0.05 + 4 * 0.01)
        assert total.cpu_efficiency == pytest.approx(0.7)

    def test_totals_without_cost(self):
        job, rows = alice_example()
        total = totals(account([job], rows, since=SINCE, now=NOW))
        assert total.cost is None
        assert total.gpu_hours == pytest.approx(4.0)

    def test_totals_of_nothing(self):
        total = totals([])
        assert total == UsageLine(key="total")
        assert total.cpu_efficiency is None

    def test_empty_rates_mean_no_cost(self):
        job, rows = alice_example()
        assert only(account([job], rows, since=SINCE, now=NOW, cost={})).cost is None

    def test_zero_cost_is_a_cost(self):
        job, rows = alice_example()
        line = only(account([job], rows, since=SINCE, now=NOW, cost={"currency": "EUR"}))
        assert line.cost == 0.0
        assert totals([line]).cost == 0.0


def test_a_zero_length_row_counts_only_inside_the_window():
    spec = JobSpec(command=("x",))
    job = Job(id=1, spec=spec, user="u", started_at=1000.0,
              allocation=Allocation(node="n", requests=Resources({"cpu": 1000})))
    outside = UsageRow(1, 1500.0, 1500.0, cpu_seconds=3600.0, energy_j=3.6e6)
    inside = UsageRow(1, 2500.0, 2500.0, cpu_seconds=3600.0, energy_j=3.6e6)
    [line] = account([job], [outside, inside], since=2000.0, now=3000.0)
    assert line.cpu_used_hours == 1.0 and line.energy_kwh == 1.0


def test_jobs_sort_by_number_when_tied():
    spec = JobSpec(command=("x",))
    jobs = [Job(id=i, spec=spec, started_at=0.0, ended_at=10.0,
                allocation=Allocation(node="n", requests=Resources({"cpu": 1000}))) for i in (10, 9)]
    assert [l.key for l in account(jobs, [], since=0.0, now=10.0, by="job")] == ["9", "10"]


def test_wasted_gpu_hours_never_exceed_the_gpu_hours_held():
    spec = JobSpec(command=("x",))
    job = Job(id=1, spec=spec, user="u", started_at=100.0, ended_at=110.0,
              allocation=Allocation(node="n", requests=Resources({"nvidia.com/gpu": 2})))
    # Samples straddle the end: 2 GPUs x 10.2 s measured idle, 2 x 10 s held.
    rows = [UsageRow(1, 100.0, 110.2, gpu_seconds=20.4, idle_gpu_seconds=20.4)]
    [line] = account([job], rows, since=0.0, now=200.0)
    assert line.gpu_hours == 20 / 3600 and line.wasted_gpu_hours == line.gpu_hours


def test_grouping_by_queue():
    jobs = [Job(id=i, spec=JobSpec(command=("x",), queue=q), user="u", started_at=0.0, ended_at=3600.0,
                allocation=Allocation(node="n", requests=Resources({"nvidia.com/gpu": g})))
            for i, (q, g) in enumerate([("research", 2), ("prod", 1), ("research", 1)], start=1)]
    lines = account(jobs, [], since=0.0, now=3600.0, by="queue")
    assert [(l.key, l.jobs, l.gpu_hours) for l in lines] == [("research", 2, 3.0), ("prod", 1, 1.0)]
