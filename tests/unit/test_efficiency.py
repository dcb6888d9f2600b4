"""Efficiency reports (like seff): the numbers, and the right-sizing hints word for word."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.job import Allocation, Job, JobState, Reason
from corral.monitor.efficiency import HEADROOM, summarize, suggest_cpu, suggest_memory
from corral.resources import Resources
from corral.spec import JobSpec
from corral.store.base import JobUsage, UsageRow

MI = 1 << 20
GI = 1 << 30
H = 3600.0
T0 = 1_000_000.0

GPU_HINT_TAIL = ("the GPUs mostly waited (data loading, CPU work, idle) -- fewer GPUs or a faster "
                 "input pipeline would do")


def make_job(*, cpu: str = "4", memory: str = "16Gi", gpus: int = 0, limits: dict | None = None,
             start: float | None = T0, end: float | None = T0 + H, reason: Reason | None = None,
             allocated: bool = True) -> Job:
    amounts: dict[str, object] = {"cpu": cpu, "memory": memory}
    if gpus:
        amounts["gpu"] = gpus
    requests = Resources.parse(amounts)
    spec = JobSpec(command=("python", "train.py"), name="train", requests=requests,
                   limits=Resources.parse(limits) if limits is not None else requests)
    if start is None:
        state, default_reason = JobState.PENDING, Reason.QUEUED
    elif end is None:
        state, default_reason = JobState.RUNNING, Reason.LAUNCHED
    else:
        state, default_reason = JobState.SUCCEEDED, Reason.COMPLETED
    reason = reason or default_reason
    if reason in (Reason.OOM_KILLED, Reason.MEMORY_LIMIT_EXCEEDED, Reason.ERROR):
        state = JobState.FAILED
    allocation = (Allocation(node="node-1", requests=requests, gpus=tuple(range(gpus)))
                  if allocated and start is not None else None)
    return Job(id=1, spec=spec, state=state, reason=reason, submitted_at=T0 - 10, started_at=start,
               ended_at=end, allocation=allocation, seq=1, user="alice")


def usage(*, cpu_seconds: float = 0.0, memory_peak: int = 0, gpu_util: float | None = None,
          seconds: float = H, gpus: int = 0, idle_gpu_seconds: float = 0.0, energy_j: float = 0.0,
          gpu_memory_peak: int | None = None) -> JobUsage:
    known = gpu_util is not None
    return JobUsage(job_id=1, rows=int(seconds // 30) or 1, first=T0, last=T0 + seconds,
                    cpu_seconds=cpu_seconds, memory_peak=memory_peak,
                    gpu_util_sum=(gpu_util or 0.0) * seconds if known else 0.0,
                    gpu_util_dt=seconds if known else 0.0, gpu_memory_peak=gpu_memory_peak,
                    energy_j=energy_j, gpu_seconds=gpus * seconds, idle_gpu_seconds=idle_gpu_seconds)


# -- suggestions -------------------------------------------------------------------------

class TestSuggestMemory:
    @pytest.mark.parametrize(
        ("peak", "suggestion"),
        [
            (0, 256 * MI),                      # never under 256Mi
            (1, 256 * MI),
            (100 * MI, 256 * MI),               # 120Mi -> 256Mi
            (256 * MI, 512 * MI),               # 307.2Mi -> 512Mi
            (600 * MI, 768 * MI),               # 720Mi -> 768Mi
            (853 * MI, 1024 * MI),              # 1023.6Mi -> 1Gi (in 256Mi steps)
            (854 * MI, 2 * GI),                 # 1024.8Mi is over 1Gi: the next whole GiB
            (int(3.1 * GI), 4 * GI),            # 3.72Gi -> 4Gi
            (5 * GI, 6 * GI),                   # exactly 6Gi, not rounded up past it
            (10 * GI, 12 * GI),
            (16 * GI, 20 * GI),                 # 19.2Gi -> 20Gi
        ],
    )
    def test_values(self, peak, suggestion):
        assert suggest_memory(peak) == suggestion

    @settings(max_examples=300, deadline=None)
    @given(st.integers(min_value=0, max_value=1 << 44))
    def test_headroom_and_granularity(self, peak):
        s = suggest_memory(peak)
        assert s >= peak * HEADROOM
        assert s >= 256 * MI
        if s > GI:
            assert s % GI == 0
            assert s - GI < peak * HEADROOM       # the smallest whole GiB that fits
        else:
            assert s % (256 * MI) == 0
            assert s == 256 * MI or s - 256 * MI < peak * HEADROOM

    @pytest.mark.parametrize("k", range(1, 65))
    def test_exact_fits_are_not_rounded_up(self, k):
        # a peak of 5k GiB wants exactly 6k GiB; float noise must not push it a GiB up
        assert suggest_memory(5 * k * GI) == 6 * k * GI


class TestSuggestCpu:
    @pytest.mark.parametrize(
        ("used", "millicores"),
        [
            (0.0, 1000),          # at least one core
            (0.1, 1000),
            (0.6, 1000),          # 0.72 -> 1
            (0.84, 2000),         # 1.008 -> 2
            (1.0, 2000),          # 1.2 -> 2
            (2.5, 3000),          # exactly 3.0 -> 3, not 4
            (5 / 1.2, 5000),      # 5 (up to float noise) -> 5
            (10.0, 12000),
            (13.4, 17000),        # 16.08 -> 17
        ],
    )
    def test_values(self, used, millicores):
        assert suggest_cpu(used) == millicores

    @settings(max_examples=300, deadline=None)
    @given(st.floats(min_value=0, max_value=512))
    def test_whole_cores_with_headroom(self, used):
        s = suggest_cpu(used)
        assert s % 1000 == 0
        assert s >= 1000
        assert s / 1000 >= used * HEADROOM - 1e-6
        assert s == 1000 or s / 1000 - 1 < used * HEADROOM


# -- summarize: the numbers --------------------------------------------------------------

class TestSummarize:
    def test_never_started(self):
        job = make_job(start=None, end=None)
        assert summarize(job, None, now=T0 + H) == {"hints": []}
        assert summarize(job, usage(cpu_seconds=10, memory_peak=GI), now=T0 + H) == {"hints": []}

    def test_started_without_usage(self):
        out = summarize(make_job(end=None), None, now=T0 + 90)
        assert out == {"hints": [], "elapsed": 90}

    def test_finished_cpu_job(self):
        job = make_job(cpu="4", memory="16Gi", end=T0 + 2 * H)
        out = summarize(job, usage(cpu_seconds=4 * 2 * H * 0.75, memory_peak=12 * GI), now=T0 + 100 * H)
        assert out["elapsed"] == 2 * H                    # up to the end, not to now
        assert out["memory_peak"] == 12 * GI
        assert out["memory_request"] == 16 * GI
        assert out["memory_efficiency"] == pytest.approx(0.75)
        assert out["cpu_seconds"] == pytest.approx(21600)
        assert out["cpu_used"] == pytest.approx(3.0)
        assert out["cpu_efficiency"] == pytest.approx(0.75)
        for key in ("gpu_util", "gpu_memory_peak", "gpu_hours", "idle_gpu_hours", "energy_kwh"):
            assert key not in out
        assert out["hints"] == []

    def test_running_job_elapsed_is_up_to_now(self):
        job = make_job(cpu="2", memory="4Gi", end=None)
        out = summarize(job, usage(cpu_seconds=1800 * 2, memory_peak=3 * GI), now=T0 + 1800)
        assert out["elapsed"] == 1800
        assert out["cpu_used"] == pytest.approx(2.0)
        assert out["cpu_efficiency"] == pytest.approx(1.0)
        assert out["memory_efficiency"] == pytest.approx(0.75)
        assert out["hints"] == []

    def test_gpu_job(self):
        job = make_job(cpu="4", memory="16Gi", gpus=2, end=T0 + 2 * H)
        u = usage(cpu_seconds=4 * 2 * H * 0.75, memory_peak=10 * GI, gpu_util=85.0, seconds=2 * H, gpus=2,
                  idle_gpu_seconds=2 * 1800, energy_j=4.32e6, gpu_memory_peak=30 * GI)
        out = summarize(job, u, now=T0 + 10 * H)
        assert out["gpu_util"] == pytest.approx(85.0)
        assert out["gpu_memory_peak"] == 30 * GI
        assert out["gpu_hours"] == pytest.approx(4.0)
        assert out["idle_gpu_hours"] == pytest.approx(1.0)
        assert out["energy_kwh"] == pytest.approx(1.2)
        assert out["hints"] == []

    def test_gpu_util_from_usage_rows(self):
        # the mean is time-weighted over the rows that knew the utilization
        total = JobUsage(job_id=1)
        for row in (UsageRow(1, T0, T0 + 600, gpu_util=10.0, gpu_seconds=600),
                    UsageRow(1, T0 + 600, T0 + 1200, gpu_util=None, gpu_seconds=600),
                    UsageRow(1, T0 + 1200, T0 + 3600, gpu_util=70.0, gpu_seconds=2400)):
            total = total.plus(row)
        out = summarize(make_job(gpus=1), total, now=T0 + H)
        assert out["gpu_util"] == pytest.approx((10 * 600 + 70 * 2400) / 3000)
        assert out["gpu_hours"] == pytest.approx(1.0)

    def test_no_memory_request(self):
        job = make_job(cpu="1", memory="0")
        out = summarize(job, usage(cpu_seconds=H, memory_peak=GI), now=T0 + H)
        assert out["memory_request"] is None
        assert "memory_efficiency" not in out
        assert out["memory_peak"] == GI

    def test_no_cpu_request(self):
        job = make_job(cpu="0", memory="1Gi")
        out = summarize(job, usage(cpu_seconds=H, memory_peak=GI // 2), now=T0 + H)
        assert "cpu_used" not in out and "cpu_efficiency" not in out
        assert out["cpu_seconds"] == H

    def test_zero_elapsed_has_no_cpu_rate(self):
        job = make_job(end=T0)
        out = summarize(job, usage(cpu_seconds=0.0, memory_peak=GI), now=T0 + H)
        assert out["elapsed"] == 0
        assert "cpu_used" not in out and "cpu_efficiency" not in out

    def test_end_before_start_is_zero_elapsed(self):
        out = summarize(make_job(start=T0, end=T0 - 5), None, now=T0 + H)
        assert out["elapsed"] == 0.0

    def test_without_allocation_the_spec_requests_are_used(self):
        job = make_job(cpu="4", memory="16Gi", allocated=False, end=T0 + H)
        out = summarize(job, usage(cpu_seconds=0.6 * H, memory_peak=int(3.1 * GI)), now=T0 + H)
        assert out["memory_request"] == 16 * GI
        assert out["cpu_efficiency"] == pytest.approx(0.15)


# -- summarize: hints --------------------------------------------------------------------

def hints(job: Job, u: JobUsage | None, now: float = T0 + 10 * H) -> list[str]:
    return summarize(job, u, now)["hints"]


class TestMemoryHints:
    def test_the_issue_example_word_for_word(self):
        job = make_job(cpu="1", memory="16Gi")
        assert hints(job, usage(cpu_seconds=H, memory_peak=int(3.1 * 2**30))) == [
            "peak memory 3.1Gi of 16Gi requested: request 4Gi next time"]

    def test_small_request(self):
        job = make_job(cpu="1", memory="512Mi")
        assert hints(job, usage(cpu_seconds=H, memory_peak=10 * MI)) == [
            "peak memory 10Mi of 512Mi requested: request 256Mi next time"]

    @pytest.mark.parametrize("peak", [8 * GI, 8 * GI + 1, 12 * GI, 16 * GI, 20 * GI])
    def test_no_hint_at_or_over_half_the_request(self, peak):
        assert hints(make_job(cpu="1", memory="16Gi"), usage(cpu_seconds=H, memory_peak=peak)) == []

    def test_hint_just_under_half(self):
        assert hints(make_job(cpu="1", memory="16Gi"), usage(cpu_seconds=H, memory_peak=8 * GI - 1)) == [
            "peak memory 8.0Gi of 16Gi requested: request 10Gi next time"]

    @pytest.mark.parametrize("memory", ["128Mi", "255Mi", "100M"])
    def test_no_hint_for_tiny_requests(self, memory):
        assert hints(make_job(cpu="1", memory=memory), usage(cpu_seconds=H, memory_peak=MI)) == []

    def test_no_hint_when_the_suggestion_is_not_smaller(self):
        # 256Mi requested, 10Mi used: the smallest suggestion is 256Mi, nothing to gain
        assert hints(make_job(cpu="1", memory="256Mi"), usage(cpu_seconds=H, memory_peak=10 * MI)) == []

    def test_no_hint_without_a_known_peak(self):
        assert hints(make_job(cpu="1", memory="16Gi"), usage(cpu_seconds=H, memory_peak=0)) == []

    def test_no_hint_without_a_memory_request(self):
        assert hints(make_job(cpu="1", memory="0"), usage(cpu_seconds=H, memory_peak=GI)) == []


class TestOutOfMemoryHints:
    @pytest.mark.parametrize("reason", [Reason.OOM_KILLED, Reason.MEMORY_LIMIT_EXCEEDED])
    def test_ran_out_of_memory(self, reason):
        job = make_job(cpu="1", memory="4Gi", reason=reason)
        assert hints(job, usage(cpu_seconds=H, memory_peak=4 * GI)) == [
            # 4Gi x 1.5 = 6Gi, with headroom 7.2Gi -> 8Gi
            "ran out of memory at its 4Gi limit: request more next time, e.g. 8Gi"]

    def test_uses_the_limit_when_there_is_one(self):
        job = make_job(cpu="1", memory="2Gi", limits={"cpu": "1", "memory": "16Gi"}, reason=Reason.OOM_KILLED)
        assert hints(job, usage(cpu_seconds=H, memory_peak=16 * GI)) == [
            # 16Gi x 1.5 = 24Gi, with headroom 28.8Gi -> 29Gi
            "ran out of memory at its 16Gi limit: request more next time, e.g. 29Gi"]

    def test_replaces_the_waste_hint(self):
        # a low recorded peak (e.g. a spike between samples) must not say "request less"
        job = make_job(cpu="1", memory="16Gi", reason=Reason.MEMORY_LIMIT_EXCEEDED)
        out = hints(job, usage(cpu_seconds=H, memory_peak=GI))
        assert len(out) == 1
        assert out[0].startswith("ran out of memory at its 16Gi limit: request more next time, e.g. ")
        assert not any(h.startswith("peak memory") for h in out)

    def test_small_limit(self):
        job = make_job(cpu="1", memory="256Mi", reason=Reason.OOM_KILLED)
        assert hints(job, usage(cpu_seconds=H, memory_peak=256 * MI)) == [
            # 384Mi with headroom 460.8Mi -> 512Mi
            "ran out of memory at its 256Mi limit: request more next time, e.g. 512Mi"]

    @pytest.mark.parametrize("reason", [Reason.COMPLETED, Reason.ERROR, Reason.TIMED_OUT])
    def test_other_reasons_do_not(self, reason):
        job = make_job(cpu="1", memory="4Gi", reason=reason)
        assert hints(job, usage(cpu_seconds=H, memory_peak=4 * GI)) == []


class TestCpuHints:
    def test_the_issue_example(self):
        job = make_job(cpu="4", memory="1Gi", end=T0 + H)
        out = summarize(job, usage(cpu_seconds=0.6 * H, memory_peak=900 * MI), now=T0 + 5 * H)
        assert out["cpu_used"] == pytest.approx(0.6)
        assert out["cpu_efficiency"] == pytest.approx(0.15)
        assert out["hints"] == ["used 0.6 of 4 CPUs on average: request 1 next time"]

    def test_running_job(self):
        job = make_job(cpu="8", memory="1Gi", end=None)
        assert hints(job, usage(cpu_seconds=2.5 * 2 * H, memory_peak=900 * MI), now=T0 + 2 * H) == [
            "used 2.5 of 8 CPUs on average: request 3 next time"]

    def test_fractional_request_is_shown_as_written(self):
        job = make_job(cpu="2500m", memory="1Gi")
        assert hints(job, usage(cpu_seconds=0.2 * H, memory_peak=900 * MI), now=T0 + H) == [
            "used 0.2 of 2.5 CPUs on average: request 1 next time"]

    def test_no_hint_for_one_cpu(self):
        job = make_job(cpu="1", memory="1Gi")
        assert hints(job, usage(cpu_seconds=0.0, memory_peak=900 * MI)) == []

    def test_no_hint_at_half_or_more(self):
        job = make_job(cpu="4", memory="1Gi")
        assert hints(job, usage(cpu_seconds=2.0 * H, memory_peak=900 * MI)) == []

    def test_no_hint_when_the_suggestion_is_not_smaller(self):
        # 0.9 of 2 CPUs is 45%, but 0.9 x 1.2 rounds up to 2 cores: nothing to gain
        job = make_job(cpu="2", memory="1Gi")
        assert hints(job, usage(cpu_seconds=0.9 * H, memory_peak=900 * MI)) == []

    def test_no_hint_for_a_job_shorter_than_a_minute(self):
        job = make_job(cpu="4", memory="1Gi", end=T0 + 59)
        assert hints(job, usage(cpu_seconds=1.0, memory_peak=900 * MI)) == []
        job = make_job(cpu="4", memory="1Gi", end=T0 + 60)
        assert hints(job, usage(cpu_seconds=1.0, memory_peak=900 * MI)) == [
            "used 0.0 of 4 CPUs on average: request 1 next time"]


class TestGpuHints:
    def test_low_utilization_on_several_gpus(self):
        job = make_job(cpu="1", memory="1Gi", gpus=2)
        assert hints(job, usage(cpu_seconds=H, memory_peak=900 * MI, gpu_util=12.4, gpus=2)) == [
            f"mean GPU utilization 12% on 2 GPUs: {GPU_HINT_TAIL}"]

    def test_low_utilization_on_one_gpu(self):
        job = make_job(cpu="1", memory="1Gi", gpus=1)
        assert hints(job, usage(cpu_seconds=H, memory_peak=900 * MI, gpu_util=0.0, gpus=1)) == [
            f"mean GPU utilization 0% on 1 GPU: {GPU_HINT_TAIL}"]

    @pytest.mark.parametrize("util", [20.0, 55.0, 100.0, None])
    def test_no_hint_when_busy_or_unknown(self, util):
        job = make_job(cpu="1", memory="1Gi", gpus=1)
        assert hints(job, usage(cpu_seconds=H, memory_peak=900 * MI, gpu_util=util, gpus=1)) == []

    def test_no_hint_for_a_job_shorter_than_a_minute(self):
        job = make_job(cpu="1", memory="1Gi", gpus=1, end=T0 + 30)
        assert hints(job, usage(cpu_seconds=30, memory_peak=900 * MI, gpu_util=1.0, seconds=30, gpus=1)) == []

    def test_no_gpu_hint_or_fields_for_a_cpu_job(self):
        job = make_job(cpu="1", memory="1Gi")
        out = summarize(job, usage(cpu_seconds=H, memory_peak=900 * MI, gpu_util=1.0), now=T0 + H)
        assert out["hints"] == []
        assert "gpu_util" not in out

    def test_all_hints_in_order(self):
        job = make_job(cpu="4", memory="16Gi", gpus=2)
        out = hints(job, usage(cpu_seconds=0.6 * H, memory_peak=int(3.1 * GI), gpu_util=5.0, gpus=2))
        assert out == [
            "peak memory 3.1Gi of 16Gi requested: request 4Gi next time",
            "used 0.6 of 4 CPUs on average: request 1 next time",
            f"mean GPU utilization 5% on 2 GPUs: {GPU_HINT_TAIL}",
        ]

    def test_no_hints_without_usage(self):
        job = make_job(cpu="4", memory="16Gi", gpus=2)
        out = summarize(job, None, now=T0 + H)
        assert out["hints"] == []
        assert "memory_peak" not in out and "gpu_util" not in out
