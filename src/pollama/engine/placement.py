"""Where a runner's layers live when RPC workers are configured (OLLAMA_RPC_SERVERS).

Each worker is probed first (`rpc.probe`: one that is down, busy or of another protocol version
is skipped with a warning), then added to llama.cpp (`rpc_backend.add_worker`). llama.cpp keeps
the first layers on this machine's CPU and gives the last `n_gpu_layers` to the listed devices
in the `tensor_split` proportions; pollama sets both from the devices' free memory as llama.cpp
reports it (a CPU reports its RAM), or from OLLAMA_RPC_SPLIT, or Ollama's num_gpu (how many
layers leave this machine). What llama.cpp actually did is read back from its load log: which
device got each layer, and each buffer's size (`Placement.report`).
"""

from __future__ import annotations

import ctypes
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pollama.engine import rpc, rpc_backend
from pollama.engine.rpc_backend import Device

LOCAL = "CPU"
_LAYER = re.compile(r"layer\s+(\d+) assigned to device (\S+?),")
_BUFFER = re.compile(r"^\S+:\s+(\S+) (?:model|KV|compute|RS) buffer size =\s+([\d.]+) MiB")
_RPC_BUFFER = re.compile(r"^RPC(\d+)\[(.+)\]$")


@dataclass
class Placement:
    """The RPC devices a model loads onto, and how its layers are split."""

    devices: list[Device]
    endpoints: list[str]  # the worker of each device
    indexes: list[int]  # the device's index on its worker
    split: rpc.Split
    skipped: dict[str, str]  # endpoint → why it was left out
    _keep: list[Any] = field(default_factory=list)

    def apply(self, mparams: Any) -> None:
        """Set `devices`, `n_gpu_layers` and `tensor_split` of a llama_model_params."""
        if not self.devices:
            return
        devices = rpc_backend.device_array(self.devices)
        shares = (ctypes.c_float * max(16, len(self.devices)))(*self.split.tensor_split)
        self._keep += [devices, shares]
        mparams.devices = ctypes.addressof(devices)
        mparams.n_gpu_layers = self.split.offloaded
        mparams.tensor_split = ctypes.cast(shares, ctypes.POINTER(ctypes.c_float))

    def name(self, i: int) -> str:
        """`RPC[host:port]`, or `RPC[host:port]/N` for a worker serving several devices."""
        endpoint = self.endpoints[i]
        several = self.endpoints.count(endpoint) > 1
        return f"RPC[{endpoint}]" + (f"/{self.indexes[i]}" if several else "")

    def report(self, load_log: Sequence[str]) -> list[dict[str, Any]]:
        """`[{"name", "layers", "memory"}]` per device, local CPU first, from llama.cpp's load
        log: layers as it assigned them (the output layer counts), memory as the sum of the
        model, KV cache and compute buffers it allocated there."""
        names = {d.name: self.name(i) for i, d in enumerate(self.devices)}
        by_worker = {(e, n): self.name(i)
                     for i, (e, n) in enumerate(zip(self.endpoints, self.indexes, strict=True))}
        order = [LOCAL] + [self.name(i) for i in range(len(self.devices))]
        layers = dict.fromkeys(order, 0)
        memory = dict.fromkeys(order, 0)
        for line in load_log:
            if m := _LAYER.search(line):
                layers[names.get(m.group(2), LOCAL)] += 1
            elif m := _BUFFER.search(line.strip()):
                where = LOCAL
                if rpc_buffer := _RPC_BUFFER.match(m.group(1)):
                    key = (rpc_buffer.group(2), int(rpc_buffer.group(1)))
                    where = by_worker.get(key, LOCAL)
                memory[where] += round(float(m.group(2)) * (1 << 20))
        return [{"name": n, "layers": layers[n], "memory": memory[n]} for n in order]


def place(model_path: str, servers: Sequence[str], split: Sequence[float],
          num_gpu: int) -> Placement:
    """Probe the workers, add the reachable ones to llama.cpp and plan the split.

    `split`: OLLAMA_RPC_SPLIT, one share for this machine then one per worker in `servers`
    (empty: by free memory). `num_gpu` ≥ 0 fixes how many layers go to the workers.
    """
    if not rpc_backend.supported():
        raise RuntimeError(rpc_backend.NOT_BUILT)
    reachable: list[tuple[str, rpc.WorkerInfo]] = []
    skipped: dict[str, str] = {}
    for endpoint in servers:
        try:
            reachable.append((endpoint, rpc.probe(endpoint)))
        except rpc.WorkerUnavailable as err:
            skipped[endpoint] = err.reason
            print(f"warning: RPC worker {endpoint} left out: {err.reason}", file=sys.stderr)
    devices: list[Device] = []
    endpoints: list[str] = []
    indexes: list[int] = []
    shares: list[float] = []
    local_share = float(split[0]) if split else float(rpc_backend.cpu_device().memory()[0])
    for endpoint, info in reachable:
        worker_devices = rpc_backend.add_worker(endpoint)
        worker_share = float(split[1 + servers.index(endpoint)]) if split else None
        free = [d.memory()[0] for d in worker_devices]
        for i, device in enumerate(worker_devices):
            devices.append(device)
            endpoints.append(endpoint)
            indexes.append(i)
            if worker_share is None:
                shares.append(float(free[i]))
            else:  # the worker's share, over its devices by their free memory
                shares.append(worker_share * (free[i] / sum(free) if sum(free) else
                                              1 / len(free)))
        print(f"RPC worker {endpoint}: protocol {'.'.join(map(str, info.version))}, "
              f"{len(worker_devices)} device(s), {info.free >> 20} MiB free", file=sys.stderr)
    plan = rpc.plan_split(rpc_backend.model_layers(model_path), local_share, shares,
                          num_gpu if num_gpu >= 0 else None)
    if not devices:
        plan = rpc.Split(0, ())
    return Placement(devices, endpoints, indexes, plan, skipped)
