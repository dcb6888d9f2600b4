"""GPU usage sampling: NvmlProbe.sample / minor_numbers with a fake NVML, SimulatedProbe
values from a JSON file, open_probe."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from types import SimpleNamespace

import pytest

from corral.capacity.gpu import (
    GpuProbe, GpuSample, NvmlProbe, SimulatedProbe, open_probe,
)

GiB = 2**30
MiB = 2**20
NOT_AVAILABLE = 2**64 - 1  # NVML_VALUE_NOT_AVAILABLE as pynvml may hand it back


# A fake pynvml (same style as test_capacity.py's) ----------------------------------------

class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """Enough of pynvml for sampling: ``count`` GPUs; every call is counted."""

    NVMLError = FakeNVMLError

    def __init__(self, count: int = 2, *, fail: tuple[str, ...] = (), fail_handle: tuple[int, ...] = (),
                 fail_init: bool = False):
        self.count = count
        self.fail = set(fail)          # function names that raise the NVML error
        self.fail_handle = set(fail_handle)
        self.fail_init = fail_init
        self.calls: Counter[str] = Counter()
        self.util = {i: 10 * (i + 1) for i in range(count)}
        self.used = {i: (i + 1) * GiB for i in range(count)}
        self.milliwatts = {i: 70500 + i for i in range(count)}
        self.compute = {i: [] for i in range(count)}
        self.graphics = {i: [] for i in range(count)}
        self.minor = {i: 4 + i for i in range(count)}

    def _hit(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.fail:
            raise FakeNVMLError(f"{name}: Not Supported")

    def nvmlInit(self):
        if self.fail_init:
            raise FakeNVMLError("Driver Not Loaded")
        self._hit("nvmlInit")

    def nvmlShutdown(self):
        self._hit("nvmlShutdown")

    def nvmlSystemGetDriverVersion(self):
        self._hit("nvmlSystemGetDriverVersion")
        return "560.35.03"

    def nvmlDeviceGetCount(self):
        self._hit("nvmlDeviceGetCount")
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        self._hit("nvmlDeviceGetHandleByIndex")
        if i in self.fail_handle or not 0 <= i < self.count:
            raise FakeNVMLError("Invalid Argument")
        return ("h", i)

    def nvmlDeviceGetUtilizationRates(self, h):
        self._hit("nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=self.util[h[1]], memory=3)

    def nvmlDeviceGetMemoryInfo(self, h):
        self._hit("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=141 * GiB, used=self.used[h[1]], free=141 * GiB - self.used[h[1]])

    def nvmlDeviceGetPowerUsage(self, h):
        self._hit("nvmlDeviceGetPowerUsage")
        return self.milliwatts[h[1]]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        self._hit("nvmlDeviceGetComputeRunningProcesses")
        return list(self.compute[h[1]])

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        self._hit("nvmlDeviceGetGraphicsRunningProcesses")
        return list(self.graphics[h[1]])

    def nvmlDeviceGetMinorNumber(self, h):
        self._hit("nvmlDeviceGetMinorNumber")
        return self.minor[h[1]]


def proc(pid: int, mem) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, usedGpuMemory=mem)


# NvmlProbe.sample ---------------------------------------------------------------------------

def test_sample_values_and_milliwatts_to_watts():
    fake = FakeNvml()
    fake.compute[0] = [proc(1234, 512 * MiB), proc(99, 3 * GiB)]
    probe = NvmlProbe(fake)
    assert isinstance(probe, GpuProbe)
    samples = probe.sample()
    assert set(samples) == {0, 1}
    s0, s1 = samples[0], samples[1]
    assert s0 == GpuSample(index=0, utilization=10.0, memory_used=GiB, power=70.5,
                           processes={1234: 512 * MiB, 99: 3 * GiB})
    assert isinstance(s0.utilization, float) and isinstance(s0.memory_used, int)
    assert s1.utilization == 20.0 and s1.memory_used == 2 * GiB and s1.power == pytest.approx(70.501)
    assert s1.processes == {}
    assert s0.to_dict() == {"index": 0, "utilization": 10.0, "memory_used": GiB, "power": 70.5,
                            "processes": {"99": 3 * GiB, "1234": 512 * MiB}}
    json.dumps(s0.to_dict())  # JSON-ready


def test_sample_selected_indices_only():
    fake = FakeNvml(count=4)
    probe = NvmlProbe(fake)
    samples = probe.sample([2, 0])
    assert sorted(samples) == [0, 2]
    assert samples[2].utilization == 30.0
    assert fake.calls["nvmlDeviceGetCount"] == 0  # indices given: no need to count
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 2
    assert probe.sample([]) == {}


def test_failing_calls_give_none_and_never_raise():
    fake = FakeNvml(fail=("nvmlDeviceGetUtilizationRates", "nvmlDeviceGetPowerUsage",
                          "nvmlDeviceGetComputeRunningProcesses"))
    fake.graphics[0] = [proc(7, 100 * MiB)]
    s = NvmlProbe(fake).sample()[0]
    assert s.utilization is None and s.power is None
    assert s.memory_used == GiB
    assert s.processes == {7: 100 * MiB}  # the graphics list still answered


def test_everything_failing_gives_unknown_sample():
    fake = FakeNvml(fail=("nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo",
                          "nvmlDeviceGetPowerUsage", "nvmlDeviceGetComputeRunningProcesses",
                          "nvmlDeviceGetGraphicsRunningProcesses"))
    assert NvmlProbe(fake).sample() == {0: GpuSample(0), 1: GpuSample(1)}
    assert GpuSample(0).to_dict() == {"index": 0, "utilization": None, "memory_used": None,
                                      "power": None, "processes": {}}


def test_lost_gpu_samples_unknown_and_is_retried():
    fake = FakeNvml(fail_handle=(1,))
    probe = NvmlProbe(fake)
    samples = probe.sample()
    assert samples[0].utilization == 10.0
    assert samples[1] == GpuSample(1)
    assert probe.sample([5]) == {5: GpuSample(5)}  # no such GPU: unknown, no error
    fake.fail_handle.clear()
    assert probe.sample([1])[1].utilization == 20.0  # a failed lookup is not cached


def test_count_failure_samples_nothing():
    fake = FakeNvml(fail=("nvmlDeviceGetCount",))
    probe = NvmlProbe(fake)
    assert probe.sample() == {}
    assert probe.minor_numbers() == {}


def test_processes_with_unavailable_memory():
    fake = FakeNvml(count=1)
    fake.compute[0] = [proc(10, None), proc(11, NOT_AVAILABLE), proc(12, 256 * MiB),
                       SimpleNamespace(usedGpuMemory=5)]            # no pid: skipped
    fake.graphics[0] = [proc(10, 64 * MiB), proc(12, None), proc(13, None)]
    assert NvmlProbe(fake).sample()[0].processes == {
        10: 64 * MiB,     # unknown in one list, known in the other
        11: None,
        12: 256 * MiB,
        13: None,
    }


def test_handles_and_count_are_cached():
    fake = FakeNvml(count=3)
    probe = NvmlProbe(fake)
    for _ in range(5):
        probe.sample()
    probe.minor_numbers()
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 3
    assert fake.calls["nvmlDeviceGetCount"] == 1
    # Per sample and GPU: utilization, memory, power, two process lists -- nothing more.
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 15
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 15
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 15
    assert fake.calls["nvmlDeviceGetGraphicsRunningProcesses"] == 15


def test_sample_after_close_is_unknown():
    fake = FakeNvml()
    probe = NvmlProbe(fake)
    probe.sample()
    probe.close()
    fake.fail |= {"nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo"}  # uninitialized
    handles_before = fake.calls["nvmlDeviceGetHandleByIndex"]
    assert probe.sample([0]) == {0: GpuSample(0)}
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == handles_before


def test_minor_numbers():
    fake = FakeNvml(count=4, fail_handle=(2,))
    fake.minor[3] = -1  # nonsense from the driver: left out
    assert NvmlProbe(fake).minor_numbers() == {0: 4, 1: 5}
    fake = FakeNvml(count=2, fail=("nvmlDeviceGetMinorNumber",))
    assert NvmlProbe(fake).minor_numbers() == {}


# SimulatedProbe values file -----------------------------------------------------------------

def write_values(path, data) -> None:
    """Write ``data`` and make sure the (mtime_ns, size) key changes, even within one tick."""
    old = os.stat(path) if path.exists() else None
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    if old is not None:
        st = os.stat(path)
        if (st.st_mtime_ns, st.st_size) == (old.st_mtime_ns, old.st_size):
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_simulated_without_file_is_unknown(tmp_path):
    probe = SimulatedProbe(2)
    assert isinstance(probe, GpuProbe)
    assert probe.sample() == {0: GpuSample(0), 1: GpuSample(1)}
    assert probe.minor_numbers() == {}
    missing = SimulatedProbe(2, values_path=str(tmp_path / "nope.json"))
    assert missing.sample() == {0: GpuSample(0), 1: GpuSample(1)}


def test_simulated_values_ints_and_quantities(tmp_path):
    path = tmp_path / "gpu-values.json"
    write_values(path, {
        "0": {"utilization": 0, "memory_used": "1Gi", "power": 70.5, "processes": {"1234": "512Mi"}},
        "1": {"utilization": 97.5, "memory_used": 3 * GiB, "processes": {"5": 1000, "6": None}},
    })
    probe = SimulatedProbe(3, values_path=str(path))
    samples = probe.sample()
    assert samples[0] == GpuSample(0, utilization=0.0, memory_used=GiB, power=70.5,
                                   processes={1234: 512 * MiB})
    assert samples[1] == GpuSample(1, utilization=97.5, memory_used=3 * GiB, power=None,
                                   processes={5: 1000, 6: None})
    assert samples[2] == GpuSample(2)  # missing index: unknown
    assert probe.sample([1, 7]) == {1: samples[1]}  # not a simulated GPU: left out


def test_simulated_reloads_only_on_change(tmp_path, monkeypatch):
    path = tmp_path / "v.json"
    write_values(path, {"0": {"utilization": 5}})
    probe = SimulatedProbe(1, values_path=path)
    reads = Counter()
    real_open = open

    def counting_open(file, *args, **kw):
        if str(file) == str(path):
            reads["n"] += 1
        return real_open(file, *args, **kw)

    monkeypatch.setattr("builtins.open", counting_open)
    for _ in range(4):
        assert probe.sample()[0].utilization == 5.0
    assert reads["n"] == 1
    write_values(path, {"0": {"utilization": 80, "power": 300}})
    assert probe.sample()[0] == GpuSample(0, utilization=80.0, power=300.0)
    assert probe.sample()[0].utilization == 80.0
    assert reads["n"] == 2
    path.unlink()
    assert probe.sample() == {0: GpuSample(0)}
    write_values(path, {"0": {"utilization": 1}})
    assert probe.sample()[0].utilization == 1.0


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "Expecting"),
    ("[1, 2]", "JSON object"),
    ('{"x": {}}', "GPU index"),
    ('{"-1": {}}', "GPU index"),
    ('{"0": 5}', "expected an object"),
    ('{"0": {"utilisation": 5}}', "unknown field 'utilisation'"),
    ('{"0": {"utilization": 150}}', "0..100"),
    ('{"0": {"utilization": true}}', "utilization"),
    ('{"0": {"power": -3}}', "power"),
    ('{"0": {"memory_used": "16GG"}}', "memory_used"),
    ('{"0": {"processes": [1]}}', "processes"),
    ('{"0": {"processes": {"pid": "1Gi"}}}', "pid"),
    ('{"0": {"processes": {"1": "lots"}}}', "processes.1"),
    ('{"0": {"power": 1e400}}', "power"),
])
def test_simulated_malformed_file_warns_and_is_unknown(tmp_path, caplog, text, fragment):
    path = tmp_path / "v.json"
    path.write_text(text)
    probe = SimulatedProbe(2, values_path=path)
    with caplog.at_level(logging.WARNING, logger="corral.gpu"):
        assert probe.sample() == {0: GpuSample(0), 1: GpuSample(1)}
    warnings = [r for r in caplog.records if r.name == "corral.gpu"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert fragment in message and str(path) in message and "\n" not in message


def test_simulated_malformed_warns_once_per_distinct_error(tmp_path, caplog):
    path = tmp_path / "v.json"
    probe = SimulatedProbe(1, values_path=path)
    with caplog.at_level(logging.WARNING, logger="corral.gpu"):
        write_values(path, '{"0": {"utilization": 500}}')
        for _ in range(3):
            probe.sample()
        write_values(path, '{"0": {"utilization": 500} }')   # same error, new file content
        probe.sample()
        write_values(path, '{"0": {"power": "hot"}}')        # a different error
        probe.sample()
        write_values(path, '{"0": {"power": 42}}')           # fixed
        assert probe.sample()[0].power == 42.0
    assert len([r for r in caplog.records if r.name == "corral.gpu"]) == 2


def test_simulated_negative_count_still_refused():
    with pytest.raises(ValueError):
        SimulatedProbe(-1, values_path="x.json")


# open_probe ---------------------------------------------------------------------------------

def test_open_probe_simulated(tmp_path):
    path = tmp_path / "v.json"
    write_values(path, {"1": {"utilization": 0}})
    probe = open_probe(2, str(path))
    assert isinstance(probe, SimulatedProbe) and probe.count == 2
    assert probe.sample()[1].utilization == 0.0
    assert isinstance(open_probe(1, None), SimulatedProbe)


def test_open_probe_nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    probe = open_probe(0, "/ignored.json")
    assert isinstance(probe, NvmlProbe)
    assert fake.calls["nvmlShutdown"] == 0  # kept open for sampling
    assert probe.sample()[1].utilization == 20.0
    probe.close()
    assert fake.calls["nvmlShutdown"] == 1


def test_open_probe_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert open_probe(0, None) is None
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_init=True))
    assert open_probe(0, None) is None
    broken = FakeNvml(fail=("nvmlDeviceGetCount",))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert open_probe(0, None) is None
    assert broken.calls["nvmlShutdown"] == 1  # the half-open probe was closed


def test_open_probe_on_this_machine_never_raises():
    probe = open_probe(0, None)
    try:
        assert probe is None or isinstance(probe.sample(), dict)
    finally:
        if probe is not None:
            probe.close()
