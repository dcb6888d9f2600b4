"""Capacity detection: GPU probes (with a fake NVML), cgroup memory caps, detect_node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from corral.capacity import detect
from corral.capacity.detect import (
    cgroup_memory_limit, detect_node, total_memory, usable_cores,
)
from corral.capacity.gpu import (
    GpuProbe, NvmlProbe, SimulatedProbe, describe_source, detect_gpus, open_probe, probe_gpus,
)
from corral.capacity.node import GpuDevice, Node, TopologyLevel
from corral.errors import ValidationError
from corral.resources import CPU, GPU, MEMORY

GiB = 2**30
L = TopologyLevel


# A fake pynvml -------------------------------------------------------------------------

class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """Enough of pynvml for NvmlProbe: 4 GPUs, NVLink pairs 0-1 and 2-3 (two links each)."""

    NVMLError = FakeNVMLError
    NVML_NVLINK_MAX_LINKS = 6

    def __init__(self, count: int = 4, *, names_as_bytes: bool = False, fail_init: bool = False,
                 fail_nvlink: bool = False, switch: bool = False, fail_ancestor: bool = False,
                 fail_handle: tuple[int, ...] = ()):
        self.count = count
        self.names_as_bytes = names_as_bytes
        self.fail_init = fail_init
        self.fail_nvlink = fail_nvlink
        self.switch = switch
        self.fail_ancestor = fail_ancestor
        self.fail_handle = fail_handle
        self.inits = 0
        self.shutdowns = 0

    # helpers
    def _s(self, text: str):
        return text.encode() if self.names_as_bytes else text

    @staticmethod
    def _bus(i: int, short: bool = False) -> str:
        return f"{'0000' if short else '00000000'}:{0x10 + i:02X}:00.0"

    def _peer(self, i: int) -> int:
        return i ^ 1

    # NVML API
    def nvmlInit(self):
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return self._s("560.35.03")

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        if i in self.fail_handle:
            raise FakeNVMLError("GPU is lost")
        return ("h", i)

    def nvmlDeviceGetUUID(self, h):
        return self._s(f"GPU-{h[1]:08d}")

    def nvmlDeviceGetName(self, h):
        return self._s("NVIDIA H200")

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=141 * GiB, free=141 * GiB, used=0)

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=self._s(self._bus(h[1])))

    def nvmlDeviceGetNvLinkState(self, h, link):
        if self.fail_nvlink:
            raise FakeNVMLError("Not Supported")
        if link >= 4:
            raise FakeNVMLError("Invalid Argument")
        return 1 if link < 2 else 0

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, h, link):
        return 2 if self.switch else 0

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h, link):
        if self.fail_nvlink:
            raise FakeNVMLError("Not Supported")
        return SimpleNamespace(busId=self._s(self._bus(self._peer(h[1]), short=True)))

    def nvmlDeviceGetTopologyCommonAncestor(self, a, b):
        if self.fail_ancestor:
            raise FakeNVMLError("Not Supported")
        # 0,1 on NUMA node 0; 2,3 on NUMA node 1; pairs share a host bridge.
        i, j = a[1], b[1]
        if i // 2 == j // 2:
            return 30
        return 40 if (i % 2) == (j % 2) else 50


def levels(devices: tuple[GpuDevice, ...]) -> dict[tuple[int, int], TopologyLevel]:
    return {(g.index, j): g.level_to(j) for g in devices for j in range(len(devices)) if j != g.index}


# NvmlProbe ----------------------------------------------------------------------------

def test_nvml_probe_four_gpus_with_nvlink_pairs():
    fake = FakeNvml()
    probe = NvmlProbe(fake)
    assert isinstance(probe, GpuProbe)
    devices = probe.devices()
    assert [g.index for g in devices] == [0, 1, 2, 3]
    assert [g.uuid for g in devices] == [f"GPU-{i:08d}" for i in range(4)]
    assert all(g.model == "NVIDIA H200" and g.memory == 141 * GiB and not g.simulated for g in devices)
    lv = levels(devices)
    assert lv[(0, 1)] == lv[(1, 0)] == L.NVLINK
    assert lv[(2, 3)] == lv[(3, 2)] == L.NVLINK
    assert lv[(0, 2)] == lv[(1, 3)] == L.NODE
    assert lv[(0, 3)] == lv[(1, 2)] == lv[(3, 0)] == L.SYSTEM
    assert probe.driver == "560.35.03"
    probe.close()
    probe.close()
    assert fake.inits == 1 and fake.shutdowns == 1


def test_nvml_probe_decodes_bytes():
    devices = NvmlProbe(FakeNvml(names_as_bytes=True)).devices()
    assert devices[0].model == "NVIDIA H200"
    assert devices[0].uuid == "GPU-00000000"
    assert levels(devices)[(0, 1)] == L.NVLINK


def test_nvlink_errors_fall_back_to_common_ancestor():
    devices = NvmlProbe(FakeNvml(fail_nvlink=True)).devices()
    lv = levels(devices)
    assert lv[(0, 1)] == lv[(2, 3)] == L.HOSTBRIDGE
    assert lv[(0, 2)] == L.NODE
    assert lv[(0, 3)] == L.SYSTEM


def test_all_topology_errors_give_system():
    devices = NvmlProbe(FakeNvml(fail_nvlink=True, fail_ancestor=True)).devices()
    assert set(levels(devices).values()) == {L.SYSTEM}


def test_nvswitch_links_make_every_pair_nvlink():
    devices = NvmlProbe(FakeNvml(switch=True)).devices()
    assert set(levels(devices).values()) == {L.NVLINK}


def test_device_without_handle_is_left_out():
    devices = NvmlProbe(FakeNvml(fail_handle=(2,))).devices()
    assert [g.index for g in devices] == [0, 1, 3]
    assert devices[0].level_to(1) == L.NVLINK
    assert dict(devices[2].links).keys() == {0, 1}


def test_init_failure_raises_from_probe_but_not_from_detect(monkeypatch):
    with pytest.raises(FakeNVMLError):
        NvmlProbe(FakeNvml(fail_init=True))
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_init=True))
    devices, source = detect_gpus()
    assert devices == ()
    assert source.startswith("none:") and "Library Not Found" in source


def test_detect_gpus_with_fake_module(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    devices, source = detect_gpus()
    assert len(devices) == 4
    assert source == "nvml: 4 x NVIDIA H200, driver 560.35.03"
    assert fake.shutdowns == 1


def test_detect_gpus_zero_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(count=0))
    assert detect_gpus() == ((), "none: nvml found no GPUs")


def test_detect_gpus_count_failure(monkeypatch):
    fake = FakeNvml()
    fake.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(FakeNVMLError("Driver Not Loaded"))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    devices, source = detect_gpus()
    assert devices == () and source == "none: nvml failed (Driver Not Loaded)"


def test_detect_gpus_without_pynvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert detect_gpus() == ((), "none: pynvml is not installed")


def test_detect_gpus_on_this_machine_never_raises():
    devices, source = detect_gpus()
    assert isinstance(devices, tuple)
    assert source.startswith(("none:", "nvml:"))
    assert "\n" not in source


def test_importing_capacity_does_not_import_pynvml():
    code = ("import sys, corral.capacity.detect, corral.capacity.gpu; "
            "assert 'pynvml' not in sys.modules and 'psutil' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# Simulated GPUs ---------------------------------------------------------------------

def test_simulated_gpus_are_marked_and_paired():
    devices, source = detect_gpus(simulate=4)
    assert len(devices) == 4 and all(g.simulated for g in devices)
    assert source == "simulated: 4 x Simulated GPU"
    lv = levels(devices)
    assert lv[(0, 1)] == lv[(2, 3)] == L.NVLINK
    assert lv[(0, 2)] == lv[(1, 3)] == L.SYSTEM


def test_simulated_probe_group():
    probe = SimulatedProbe(4, group=4)
    assert isinstance(probe, GpuProbe)
    assert set(levels(probe.devices()).values()) == {L.NVLINK}
    with pytest.raises(ValueError):
        SimulatedProbe(-1)
    assert [g.model for g in SimulatedProbe(2, model="H100").devices()] == ["H100", "H100"]
    assert [g.model for g in open_probe(1, None, model="H100").devices()] == ["H100"]


def test_describe_source_mixed_models():
    devs = (GpuDevice(0, "a", "A100", 1), GpuDevice(1, "b", "T4", 1), GpuDevice(2, "c", "A100", 1))
    assert describe_source(SimpleNamespace(name="nvml", driver=None), devs) == "nvml: 2 x A100, 1 x T4"


def test_probe_gpus_failure_is_contained():
    class Broken:
        name = "broken"

        def devices(self):
            raise RuntimeError("boom\nsecond line")

        def close(self):
            pass

    assert probe_gpus(Broken()) == ((), "none: broken failed (boom)")


# cgroup memory limits -----------------------------------------------------------------

def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/user.slice/job.scope\n")
    write(tmp_path / "sys/fs/cgroup/user.slice/job.scope/memory.max", "2147483648\n")
    write(tmp_path / "sys/fs/cgroup/user.slice/memory.max", "max\n")
    assert cgroup_memory_limit(tmp_path) == 2 * GiB


def test_cgroup_v2_unlimited(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/user.slice\n")
    write(tmp_path / "sys/fs/cgroup/user.slice/memory.max", "max\n")
    assert cgroup_memory_limit(tmp_path) is None


def test_cgroup_v2_parent_limit_applies(tmp_path):
    write(tmp_path / "proc/self/cgroup", "0::/a/b\n")
    write(tmp_path / "sys/fs/cgroup/a/b/memory.max", "max\n")
    write(tmp_path / "sys/fs/cgroup/a/memory.max", str(3 * GiB))
    assert cgroup_memory_limit(tmp_path) == 3 * GiB


def test_cgroup_v2_namespaced_container(tmp_path):
    # The process's path is not under this mount; the container's cgroup is the mount root.
    write(tmp_path / "proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
    write(tmp_path / "sys/fs/cgroup/memory.max", str(GiB))
    assert cgroup_memory_limit(tmp_path) == GiB


def test_cgroup_v1_limit(tmp_path):
    write(tmp_path / "proc/self/cgroup",
          "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n")
    write(tmp_path / "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path / "sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes", str(4 * GiB))
    assert cgroup_memory_limit(tmp_path) == 4 * GiB


def test_cgroup_v1_unlimited(tmp_path):
    write(tmp_path / "proc/self/cgroup", "4:memory:/x\n0::/\n")
    write(tmp_path / "sys/fs/cgroup/memory/x/memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(tmp_path) is None


def test_cgroup_files_missing(tmp_path):
    assert cgroup_memory_limit(tmp_path) is None
    write(tmp_path / "proc/self/cgroup", "garbage\n0::/nowhere\n")
    assert cgroup_memory_limit(tmp_path) is None


def test_total_memory_capped_by_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "physical_memory", lambda: 64 * GiB)
    write(tmp_path / "proc/self/cgroup", "0::/job\n")
    write(tmp_path / "sys/fs/cgroup/job/memory.max", str(8 * GiB))
    assert total_memory(tmp_path) == 8 * GiB
    write(tmp_path / "sys/fs/cgroup/job/memory.max", str(128 * GiB))
    assert total_memory(tmp_path) == 64 * GiB


# detect_node ---------------------------------------------------------------------------

class FakeProbe:
    name = "fake"

    def __init__(self, devices):
        self._devices = devices
        self.closed = False

    def devices(self):
        return self._devices

    def close(self):
        self.closed = True


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A 4-core, 32 GiB machine with no cgroup limit."""
    monkeypatch.setattr(detect, "usable_cores", lambda: (0, 1, 2, 3))
    monkeypatch.setattr(detect, "physical_memory", lambda: 32 * GiB)
    return tmp_path


def test_detect_node_with_fake_probe(machine):
    probe = FakeProbe(NvmlProbe(FakeNvml()).devices())
    node, info = detect_node(name="n1", probe=probe, cgroup_root=machine)
    assert node.name == "n1"
    assert node.capacity == {CPU: 4000, MEMORY: 32 * GiB, GPU: 4}
    assert node.cores == (0, 1, 2, 3)
    assert node.reserve == {MEMORY: GiB}
    assert node.allocatable == {CPU: 4000, MEMORY: 31 * GiB, GPU: 4}
    assert node.gpu(0).level_to(1) == L.NVLINK
    assert info == {"gpu_source": "fake: 4 x NVIDIA H200", "cgroup_memory_limit": None}
    assert not probe.closed  # the caller owns the probe


def test_detect_node_reserve_default_is_ten_percent_when_small(machine, monkeypatch):
    monkeypatch.setattr(detect, "physical_memory", lambda: 4 * GiB)
    node, _ = detect_node(probe=FakeProbe(()), cgroup_root=machine)
    assert node.reserve[MEMORY] == 4 * GiB // 10


def test_detect_node_explicit_reserve(machine):
    node, _ = detect_node(reserve_cpu=500, reserve_memory=2 * GiB, probe=FakeProbe(()),
                          cgroup_root=machine)
    assert node.reserve == {CPU: 500, MEMORY: 2 * GiB}
    assert node.allocatable == {CPU: 3500, MEMORY: 30 * GiB}
    node, _ = detect_node(reserve_memory=0, probe=FakeProbe(()), cgroup_root=machine)
    assert node.reserve == {}


def test_detect_node_reserve_errors(machine):
    with pytest.raises(ValidationError) as err:
        detect_node(reserve_cpu=4000, probe=FakeProbe(()), cgroup_root=machine)
    assert err.value.field == "reserve.cpu"
    msg = str(err.value)
    assert "reserve.cpu" in msg and '"4"' in msg and "capacity of 4" in msg and "\n" not in msg
    with pytest.raises(ValidationError) as err:
        detect_node(reserve_memory=64 * GiB, probe=FakeProbe(()), cgroup_root=machine)
    assert err.value.field == "reserve.memory"
    assert "64Gi" in str(err.value) and "32Gi" in str(err.value)
    with pytest.raises(ValidationError):
        detect_node(reserve_cpu=-1, probe=FakeProbe(()), cgroup_root=machine)
    with pytest.raises(ValidationError):
        detect_node(simulate_gpus=-1, cgroup_root=machine)


def test_detect_node_cgroup_limit(machine):
    write(machine / "proc/self/cgroup", "0::/job\n")
    write(machine / "sys/fs/cgroup/job/memory.max", str(8 * GiB))
    node, info = detect_node(probe=FakeProbe(()), cgroup_root=machine)
    assert node.capacity[MEMORY] == 8 * GiB
    assert info["cgroup_memory_limit"] == 8 * GiB
    assert info["gpu_source"] == "none: fake found no GPUs"


def test_detect_node_simulated_gpus(machine):
    node, info = detect_node(simulate_gpus=4, cgroup_root=machine)
    assert node.capacity[GPU] == 4 and node.simulated_gpus
    assert node.gpu(2).level_to(3) == L.NVLINK and node.gpu(1).level_to(2) == L.SYSTEM
    assert info["gpu_source"].startswith("simulated")


def test_detect_node_simulated_model_and_labels(machine):
    node, info = detect_node(simulate_gpus=2, gpu_model="A100", labels={"zone": "lab1", "rack": "r3"},
                             cgroup_root=machine)
    assert [g.model for g in node.gpus] == ["A100", "A100"] and node.gpu_models == ("A100",)
    assert node.labels == (("rack", "r3"), ("zone", "lab1")) and node.label("zone") == "lab1"
    assert info["gpu_source"] == "simulated: 2 x A100"
    plain, _ = detect_node(simulate_gpus=1, cgroup_root=machine)
    assert plain.gpu_models == ("Simulated GPU",) and plain.labels == ()


def test_detect_node_on_this_machine():
    node, info = detect_node()
    assert len(node.cores) >= 1
    assert node.cores == usable_cores()
    assert node.capacity[CPU] == 1000 * len(node.cores)
    assert node.capacity[MEMORY] > 0
    assert node.allocatable[MEMORY] > 0
    assert node.name
    if info["gpu_source"].startswith("none:"):  # no GPU, no NVML: zero GPUs, no crash
        assert node.gpus == () and node.capacity[GPU] == 0
    assert Node.from_dict(node.to_dict()) == node
