"""What a node has: devices, capacity, the system reserve and what is allocatable."""

from .node import GpuDevice, Node, TopologyLevel

__all__ = ["GpuDevice", "Node", "TopologyLevel"]
