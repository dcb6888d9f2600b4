"""GPU probes: what GPUs this machine has and how they are connected.

A probe lists :class:`GpuDevice` records. :class:`NvmlProbe` asks the NVIDIA driver
through ``pynvml`` (imported only when a probe is built, never at CLI start-up);
:class:`SimulatedProbe` makes GPUs up for machines without any. :func:`detect_gpus`
never raises: a machine without a usable driver simply has no GPUs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol, runtime_checkable

from .node import GpuDevice, TopologyLevel, simulated_gpus

#: ``nvmlEnableState_t`` value of an active NVLink.
_FEATURE_ENABLED = 1
#: ``NVML_NVLINK_DEVICE_TYPE_SWITCH``: the link ends at an NVSwitch, not at a GPU.
_DEVICE_TYPE_SWITCH = 2
#: Links to try when the module does not say (``NVML_NVLINK_MAX_LINKS`` is 36 today).
_DEFAULT_MAX_LINKS = 18


@runtime_checkable
class GpuProbe(Protocol):
    """Something that lists this machine's GPUs."""

    name: str

    def devices(self) -> tuple[GpuDevice, ...]:
        """The GPUs, by index, each with its topology level to every other GPU."""
        ...

    def close(self) -> None:
        """Release whatever the probe holds (NVML handle); safe to call twice."""
        ...


class SimulatedProbe:
    """``count`` made-up GPUs; each run of ``group`` consecutive GPUs shares an NVLink."""

    name = "simulated"

    def __init__(self, count: int, group: int = 2) -> None:
        if count < 0:
            raise ValueError(f"simulated GPU count must not be negative, got {count}")
        self.count = count
        self.group = group

    def devices(self) -> tuple[GpuDevice, ...]:
        return simulated_gpus(self.count, group=self.group)

    def close(self) -> None:
        """Nothing to release: simulated devices hold no library or handles."""


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
        #: Driver version, e.g. ``"560.35.03"``; None when NVML does not say.
        self.driver: str | None = _text(self._call("nvmlSystemGetDriverVersion")) or None

    def __enter__(self) -> "NvmlProbe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._call("nvmlShutdown")

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


def detect_gpus(simulate: int = 0) -> tuple[tuple[GpuDevice, ...], str]:
    """This machine's GPUs and a one-line source, e.g. ``"nvml: 8 x NVIDIA H200, driver 560.35"``.

    ``simulate > 0`` makes that many simulated GPUs instead. Without a usable NVML
    (no library, no driver, no GPUs) the answer is ``((), "none: <reason>")``; never raises.
    """
    if simulate > 0:
        return probe_gpus(SimulatedProbe(simulate))
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
