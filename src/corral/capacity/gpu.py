"""GPU probes: what GPUs this machine has and how they are connected.

A probe lists :class:`GpuDevice` records. :class:`NvmlProbe` asks the NVIDIA driver
through ``pynvml`` (imported only when a probe is built, never at CLI start-up);
:class:`SimulatedProbe` makes GPUs up for machines without any. :func:`detect_gpus`
never raises: a machine without a usable driver simply has no GPUs.

A probe also *samples* its GPUs (:meth:`GpuProbe.sample`): utilization, memory in use,
power draw and the processes using each one, cheap enough to call every couple of
seconds. The daemon keeps one probe open for that (:func:`open_probe`). Simulated GPUs
report what a JSON file says (see :class:`SimulatedProbe`), so tests and demos can
drive idle detection and accounting without hardware.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .node import GpuDevice, TopologyLevel, simulated_gpus

log = logging.getLogger("corral.gpu")

#: ``nvmlEnableState_t`` value of an active NVLink.
_FEATURE_ENABLED = 1
#: ``NVML_NVLINK_DEVICE_TYPE_SWITCH``: the link ends at an NVSwitch, not at a GPU.
_DEVICE_TYPE_SWITCH = 2
#: Links to try when the module does not say (``NVML_NVLINK_MAX_LINKS`` is 36 today).
_DEFAULT_MAX_LINKS = 18
#: ``NVML_VALUE_NOT_AVAILABLE`` as an unsigned long long: "this process's memory is unknown".
_VALUE_NOT_AVAILABLE = 2**64 - 1


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment. Every value may be None: unknown (not "zero")."""

    index: int
    #: Percent (0..100) of the last sample period in which a kernel ran.
    utilization: float | None = None
    #: Bytes of GPU memory in use, by anyone.
    memory_used: int | None = None
    #: Watts.
    power: float | None = None
    #: pid -> bytes of GPU memory that process uses (None: the driver does not say).
    processes: dict[int, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"index": self.index, "utilization": self.utilization,
                "memory_used": self.memory_used, "power": self.power,
                "processes": {str(pid): mem for pid, mem in sorted(self.processes.items())}}


@runtime_checkable
class GpuProbe(Protocol):
    """Something that lists this machine's GPUs."""

    name: str

    def devices(self) -> tuple[GpuDevice, ...]:
        """The GPUs, by index, each with its topology level to every other GPU."""
        ...

    def sample(self, indices: Iterable[int] | None = None) -> dict[int, GpuSample]:
        """Usage of the GPUs ``indices`` (default all), by index; never raises."""
        ...

    def minor_numbers(self) -> dict[int, int]:
        """GPU index -> minor number N of its ``/dev/nvidiaN``; unknown ones left out."""
        ...

    def close(self) -> None:
        """Release whatever the probe holds (NVML handle); safe to call twice."""
        ...


class SimulatedProbe:
    """``count`` made-up GPUs; each run of ``group`` consecutive GPUs shares an NVLink.

    :meth:`sample` reports what the JSON file ``values_path`` says, e.g.
    ``{"0": {"utilization": 0, "memory_used": "1Gi", "power": 70.5,
    "processes": {"1234": "512Mi"}}}`` (memory as bytes or a Kubernetes quantity, every
    field optional). A GPU the file does not mention, or no file at all, samples as
    unknown (all None, no processes). The file is read again only when its size or
    mtime changes; a malformed file is logged (once per distinct error) and ignored.
    """

    name = "simulated"

    def __init__(self, count: int, group: int = 2, values_path: str | os.PathLike[str] | None = None,
                 model: str = "Simulated GPU") -> None:
        if count < 0:
            raise ValueError(f"simulated GPU count must not be negative, got {count}")
        self.count = count
        self.group = group
        self.model = model
        self.values_path = os.fspath(values_path) if values_path is not None else None
        self._key: tuple[int, int] | None = None      # (mtime_ns, size) of what _values holds
        self._values: dict[int, GpuSample] = {}
        self._warned: set[str] = set()

    def devices(self) -> tuple[GpuDevice, ...]:
        return simulated_gpus(self.count, group=self.group, model=self.model)

    def sample(self, indices: Iterable[int] | None = None) -> dict[int, GpuSample]:
        values = self._load()
        wanted = range(self.count) if indices is None else indices
        return {i: values[i] if i in values else GpuSample(i) for i in wanted if 0 <= i < self.count}

    def minor_numbers(self) -> dict[int, int]:
        return {}  # simulated GPUs have no device files

    def close(self) -> None:
        """Nothing to release: simulated devices hold no library or handles."""

    def _load(self) -> dict[int, GpuSample]:
        """The file's values, re-read only when its (mtime_ns, size) changed."""
        if self.values_path is None:
            return {}
        try:
            st = os.stat(self.values_path)
        except FileNotFoundError:
            self._key, self._values = None, {}
            return {}
        except OSError as exc:
            self._warn(f"cannot stat: {exc}")
            self._key, self._values = None, {}
            return {}
        key = (st.st_mtime_ns, st.st_size)
        if key == self._key:
            return self._values
        self._key = key
        try:
            with open(self.values_path, "rb") as f:
                self._values = parse_sample_values(json.loads(f.read()))
        except FileNotFoundError:
            self._key, self._values = None, {}
        except (OSError, ValueError, OverflowError, RecursionError) as exc:  # JSONDecodeError: ValueError
            self._warn(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._values = {}
        return self._values

    def _warn(self, error: str) -> None:
        if error not in self._warned:
            self._warned.add(error)
            log.warning("simulated GPU values %s ignored: %s", self.values_path, error)


def parse_sample_values(data: Any) -> dict[int, GpuSample]:
    """``{"0": {"utilization": .., "memory_used": .., "power": .., "processes": {pid: mem}}}``
    as samples by index; raises ValueError naming the first thing wrong."""
    from ..errors import CorralError
    from ..resources import parse_quantity  # only simulated probes need it

    def memory(value: Any, where: str) -> int | None:
        if value is None:
            return None
        try:
            return parse_quantity("memory", value)
        except CorralError as exc:  # QuantityError
            raise ValueError(f"{where}: {exc}") from None

    def number(value: Any, where: str, top: float | None = None) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0 or (top is not None and value > top):
            limit = f"0..{top:g}" if top is not None else "a number >= 0"
            raise ValueError(f"{where}: expected {limit}, got {value!r}")
        return float(value)

    def integer(text: Any, where: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = -1
        if isinstance(text, bool) or value < 0:
            raise ValueError(f"{where}: expected a non-negative integer key, got {text!r}")
        return value

    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object of GPU index -> values, got {type(data).__name__}")
    known = {"utilization", "memory_used", "power", "processes"}
    samples: dict[int, GpuSample] = {}
    for key, entry in data.items():
        index = integer(key, "GPU index")
        where = f"GPU {key}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field {unknown[0]!r} (expected {', '.join(sorted(known))})")
        procs = entry.get("processes") or {}
        if not isinstance(procs, dict):
            raise ValueError(f"{where}.processes: expected an object of pid -> memory")
        samples[index] = GpuSample(
            index=index,
            utilization=number(entry.get("utilization"), f"{where}.utilization", 100.0),
            memory_used=memory(entry.get("memory_used"), f"{where}.memory_used"),
            power=number(entry.get("power"), f"{where}.power"),
            processes={integer(pid, f"{where}.processes pid"): memory(mem, f"{where}.processes.{pid}")
                       for pid, mem in procs.items()})
    return samples


class NvmlProbe:
    """GPUs as the NVIDIA driver reports them, through NVML.

    ``nvml`` is the ``pynvml`` module (imported here when not given; tests pass a fake
    with the same functions and an ``NVMLError`` class). Building the probe calls
    ``nvmlInit`` and raises when that fails; :meth:`close` calls ``nvmlShutdown``.
    Per-device and topology failures never raise: a device whose handle or UUID cannot
    be read is left out, a pair whose topology cannot be read is ``SYSTEM``.
    """

    name = "nvml"

    def __init__(self, nvml: Any = None) -> None:
        if nvml is None:
            import pynvml as nvml  # lazy: loading NVML is for the daemon, not the CLI
        self._nvml = nvml
        self._error: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        nvml.nvmlInit()
        self._open = True
        self._handles: dict[int, Any] = {}
        self._device_count: int | None = None
        #: Driver version, e.g. ``"560.35.03"``; None when NVML does not say.
        self.driver: str | None = _text(self._call("nvmlSystemGetDriverVersion")) or None

    def __enter__(self) -> "NvmlProbe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._handles.clear()  # handles are invalid once NVML is shut down
            self._call("nvmlShutdown")

    # Sampling --------------------------------------------------------------------------
    def sample(self, indices: Iterable[int] | None = None) -> dict[int, GpuSample]:
        """Utilization, memory in use, power and processes of ``indices`` (default all GPUs).

        Handles are looked up once and kept; a call that fails leaves its value None.
        Never raises: a GPU that cannot be reached samples as all unknown.
        """
        if indices is None:
            count = self._count()
            indices = range(count or 0)
        found: dict[int, GpuSample] = {}
        for index in indices:
            handle = self._handle(index)
            if handle is None:
                found[index] = GpuSample(index)
                continue
            util = _number(getattr(self._call("nvmlDeviceGetUtilizationRates", handle), "gpu", None))
            used = _number(getattr(self._call("nvmlDeviceGetMemoryInfo", handle), "used", None))
            milliwatts = _number(self._call("nvmlDeviceGetPowerUsage", handle))
            found[index] = GpuSample(
                index=index, utilization=None if util is None else float(util),
                memory_used=None if used is None else int(used),
                power=None if milliwatts is None else milliwatts / 1000.0,
                processes=self._processes(handle))
        return found

    def minor_numbers(self) -> dict[int, int]:
        """GPU index -> N of ``/dev/nvidiaN``; GPUs whose number NVML will not give are left out."""
        minors: dict[int, int] = {}
        for index in range(self._count() or 0):
            handle = self._handle(index)
            minor = _number(self._call("nvmlDeviceGetMinorNumber", handle)) if handle is not None else None
            if minor is not None and minor >= 0:
                minors[index] = int(minor)
        return minors

    def _count(self) -> int | None:
        if self._device_count is None:
            count = _number(self._call("nvmlDeviceGetCount"))
            self._device_count = None if count is None else max(0, int(count))
        return self._device_count

    def _handle(self, index: int) -> Any:
        """The cached handle of GPU ``index``; a failed lookup is tried again next time."""
        handle = self._handles.get(index)
        if handle is None and self._open:
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            if handle is not None:
                self._handles[index] = handle
        return handle

    def _processes(self, handle: Any) -> dict[int, int | None]:
        """pid -> GPU memory bytes (None: not available), compute and graphics together."""
        procs: dict[int, int | None] = {}
        for function in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            listed = self._call(function, handle)
            try:
                entries = list(listed or ())
            except TypeError:
                continue
            for entry in entries:
                pid = _number(getattr(entry, "pid", None))
                if pid is None:
                    continue
                mem = _number(getattr(entry, "usedGpuMemory", None))
                mem = None if mem is None or mem < 0 or mem >= _VALUE_NOT_AVAILABLE else int(mem)
                pid = int(pid)
                old = procs.get(pid)
                # A process in both lists is reported with the same memory; keep what is known.
                procs[pid] = mem if old is None else (old if mem is None else max(old, mem))
        return procs

    def devices(self) -> tuple[GpuDevice, ...]:
        """Every GPU NVML can name; raises the NVML error only when the count fails."""
        count = int(self._nvml.nvmlDeviceGetCount())
        handles: dict[int, Any] = {}
        found: list[GpuDevice] = []
        for index in range(count):
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            uuid = _text(self._call("nvmlDeviceGetUUID", handle)) if handle is not None else ""
            if not uuid:
                continue  # a GPU we cannot name cannot be pinned to a job
            model = _text(self._call("nvmlDeviceGetName", handle)) or "NVIDIA GPU"
            memory = int(getattr(self._call("nvmlDeviceGetMemoryInfo", handle), "total", 0) or 0)
            handles[index] = handle
            found.append(GpuDevice(index=index, uuid=uuid, model=model, memory=memory))
        links = self._topology(handles)
        return tuple(GpuDevice(index=g.index, uuid=g.uuid, model=g.model, memory=g.memory,
                               links=links[g.index]) for g in found)

    # Topology ------------------------------------------------------------------------
    def _topology(self, handles: dict[int, Any]) -> dict[int, tuple[tuple[int, TopologyLevel], ...]]:
        """Level between every pair: NVLink when linked, else NVML's common ancestor."""
        bus = {i: _bus_id(getattr(self._call("nvmlDeviceGetPciInfo", h), "busId", ""))
               for i, h in handles.items()}
        peers: dict[int, set[str]] = {}
        on_switch: set[int] = set()
        for i, h in handles.items():
            peers[i], switched = self._nvlink_peers(h)
            if switched:
                on_switch.add(i)
        levels: dict[tuple[int, int], TopologyLevel] = {}
        order = sorted(handles)
        for a, i in enumerate(order):
            for j in order[a + 1:]:
                direct = (bus[j] and bus[j] in peers[i]) or (bus[i] and bus[i] in peers[j])
                if direct or (i in on_switch and j in on_switch):
                    level = TopologyLevel.NVLINK
                else:
                    level = self._common_ancestor(handles[i], handles[j])
                levels[(i, j)] = levels[(j, i)] = level
        return {i: tuple((j, levels[(i, j)]) for j in order if j != i) for i in order}

    def _nvlink_peers(self, handle: Any) -> tuple[set[str], bool]:
        """PCI bus ids at the far end of this GPU's active NVLinks, and whether any ends at an NVSwitch."""
        peers: set[str] = set()
        switched = False
        switch_type = getattr(self._nvml, "NVML_NVLINK_DEVICE_TYPE_SWITCH", _DEVICE_TYPE_SWITCH)
        for link in range(int(getattr(self._nvml, "NVML_NVLINK_MAX_LINKS", _DEFAULT_MAX_LINKS))):
            if self._call("nvmlDeviceGetNvLinkState", handle, link) != _FEATURE_ENABLED:
                continue
            if self._call("nvmlDeviceGetNvLinkRemoteDeviceType", handle, link) == switch_type:
                switched = True  # NVSwitch fabric: every GPU on it is one NVLink hop away
                continue
            remote = _bus_id(getattr(self._call("nvmlDeviceGetNvLinkRemotePciInfo", handle, link),
                                     "busId", ""))
            if remote:
                peers.add(remote)
        return peers, switched

    def _common_ancestor(self, first: Any, second: Any) -> TopologyLevel:
        value = self._call("nvmlDeviceGetTopologyCommonAncestor", first, second)
        try:
            level = TopologyLevel(int(value))
        except (TypeError, ValueError):
            return TopologyLevel.SYSTEM
        return level if level >= TopologyLevel.INTERNAL else TopologyLevel.SYSTEM

    def _call(self, function: str, *args: Any) -> Any:
        """``nvml.<function>(*args)``, or None when NVML lacks it or raises an NVML error."""
        fn = getattr(self._nvml, function, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except self._error:
            return None


def detect_gpus(simulate: int = 0, *, model: str = "Simulated GPU") -> tuple[tuple[GpuDevice, ...], str]:
    """This machine's GPUs and a one-line source, e.g. ``"nvml: 8 x NVIDIA H200, driver 560.35"``.

    ``simulate > 0`` makes that many simulated GPUs of ``model`` instead. Without a usable NVML
    (no library, no driver, no GPUs) the answer is ``((), "none: <reason>")``; never raises.
    """
    if simulate > 0:
        return probe_gpus(SimulatedProbe(simulate, model=model))
    try:
        probe = NvmlProbe()
    except ImportError:
        return (), "none: pynvml is not installed"
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return (), f"none: NVML unavailable ({_reason(exc)})"
    try:
        return probe_gpus(probe)
    finally:
        probe.close()


def open_probe(simulate: int, values_path: str | os.PathLike[str] | None = None, *,
               model: str = "Simulated GPU") -> GpuProbe | None:
    """A probe for the daemon to keep open and sample: simulated GPUs of ``model`` when
    ``simulate > 0`` (their values from ``values_path``), else NVML; None when NVML is
    not usable."""
    if simulate > 0:
        return SimulatedProbe(simulate, values_path=values_path, model=model)
    try:
        probe = NvmlProbe()
    except ImportError:
        return None
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    if probe._count() is None:  # the driver answers nvmlInit but cannot count its GPUs
        probe.close()
        return None
    return probe


def probe_gpus(probe: GpuProbe) -> tuple[tuple[GpuDevice, ...], str]:
    """``probe.devices()`` and a one-line source; a failing probe gives ``((), "none: ...")``."""
    try:
        devices = tuple(probe.devices())
    except Exception as exc:
        return (), f"none: {probe.name} failed ({_reason(exc)})"
    if not devices:
        return (), f"none: {probe.name} found no GPUs"
    return devices, describe_source(probe, devices)


def describe_source(probe: GpuProbe, devices: tuple[GpuDevice, ...]) -> str:
    """``"nvml: 8 x NVIDIA H200, driver 560.35"``; models in index order."""
    models = Counter(g.model for g in sorted(devices, key=lambda g: g.index))
    text = f"{probe.name}: " + ", ".join(f"{n} x {model}" for model, n in models.items())
    driver = getattr(probe, "driver", None)
    return f"{text}, driver {driver}" if driver else text


def _text(value: Any) -> str:
    """NVML strings are ``bytes`` in older pynvml and ``str`` in newer ones."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).strip().strip("\x00").strip()


def _number(value: Any) -> float | int | None:
    """An int or float from NVML, or None for anything else (None, a failed call, junk)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _bus_id(value: Any) -> str:
    """A PCI bus id in one form: ``00000000:07:00.0`` and ``0000:07:00.0`` compare equal."""
    text = _text(value).lower()
    domain, sep, rest = text.partition(":")
    if sep and rest.count(":") == 1:
        try:
            return f"{int(domain, 16):04x}:{rest}"
        except ValueError:
            pass
    return text


def _reason(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except Exception:
        text = ""
    line = (text.splitlines() or [""])[0][:120]
    return line or type(exc).__name__
