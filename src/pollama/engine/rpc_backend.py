"""llama.cpp's RPC backend through ctypes on llama-cpp-python's own shared libraries.

llama-cpp-python binds `llama_*` but not ggml's backend registry, where the RPC backend lives
(`ggml-rpc.h`): the client side (`ggml_backend_rpc_add_server` → devices for
`llama_model_params.devices`) and the server side (`ggml_backend_rpc_start_server`). Both are
reached as llama.cpp's own tools do, through the "RPC" backend registration and
`ggml_backend_reg_get_proc_address`, so a library built without `GGML_RPC=ON` is detected
(`supported`) instead of failing on a missing symbol. Runner and worker processes only.
"""

from __future__ import annotations

import ctypes
import pathlib
from dataclasses import dataclass
from typing import Any

import llama_cpp
from llama_cpp import llama_cpp as C
from llama_cpp._ctypes_extensions import load_shared_library

from pollama.engine.rpc import NOT_BUILT

# enum ggml_backend_dev_type
DEVICE_CPU, DEVICE_GPU, DEVICE_IGPU, DEVICE_ACCEL, DEVICE_META = range(5)

_ggml = load_shared_library("ggml", pathlib.Path(llama_cpp.__file__).parent / "lib")


def _bind(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(_ggml, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_vp, _sz = ctypes.c_void_p, ctypes.c_size_t
_reg_by_name = _bind("ggml_backend_reg_by_name", _vp, ctypes.c_char_p)
_reg_proc = _bind("ggml_backend_reg_get_proc_address", _vp, _vp, ctypes.c_char_p)
_reg_dev_count = _bind("ggml_backend_reg_dev_count", _sz, _vp)
_reg_dev_get = _bind("ggml_backend_reg_dev_get", _vp, _vp, _sz)
_dev_count = _bind("ggml_backend_dev_count", _sz)
_dev_get = _bind("ggml_backend_dev_get", _vp, _sz)
_dev_by_type = _bind("ggml_backend_dev_by_type", _vp, ctypes.c_int)
_dev_name = _bind("ggml_backend_dev_name", ctypes.c_char_p, _vp)
_dev_description = _bind("ggml_backend_dev_description", ctypes.c_char_p, _vp)
_dev_type = _bind("ggml_backend_dev_type", ctypes.c_int, _vp)
_dev_memory = _bind("ggml_backend_dev_memory", None, _vp, ctypes.POINTER(_sz),
                    ctypes.POINTER(_sz))

# ggml_backend_reg_t ggml_backend_rpc_add_server(const char * endpoint);
_AddServer = ctypes.CFUNCTYPE(_vp, ctypes.c_char_p)
# void ggml_backend_rpc_start_server(const char * endpoint, const char * cache_dir,
#                                    size_t n_threads, size_t n_devices, ggml_backend_dev_t *);
_StartServer = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, _sz, _sz,
                                ctypes.POINTER(_vp))


@dataclass(frozen=True)
class Device:
    """One ggml device: its handle, llama.cpp's name (`CPU`, `RPC0`), and description (an RPC
    device's is its worker's endpoint)."""

    handle: int
    name: str
    description: str

    def memory(self) -> tuple[int, int]:
        """(free, total) bytes; for an RPC device, asked of its worker."""
        free, total = _sz(0), _sz(0)
        _dev_memory(self.handle, ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value

    @property
    def kind(self) -> int:
        return int(_dev_type(self.handle))


def _device(handle: int) -> Device:
    return Device(handle, (_dev_name(handle) or b"").decode(),
                  (_dev_description(handle) or b"").decode())


def supported() -> bool:
    """Whether this llama.cpp was built with the RPC backend (`llama_supports_rpc`)."""
    return bool(C.llama_supports_rpc())


def _proc(name: str) -> int:
    C.llama_backend_init()
    reg = _reg_by_name(b"RPC")
    if not reg or not supported():
        raise RuntimeError(NOT_BUILT)
    address = _reg_proc(reg, name.encode())
    if not address:
        raise RuntimeError(f"llama.cpp's RPC backend has no {name}")
    return int(address)


def add_worker(endpoint: str) -> list[Device]:
    """Connect to a worker (it must answer: llama.cpp aborts otherwise, see `rpc.probe`) and
    return its devices, for `llama_model_params.devices`."""
    add = _AddServer(_proc("ggml_backend_rpc_add_server"))
    reg = add(endpoint.encode())
    if not reg:
        raise RuntimeError(f"RPC worker {endpoint} has no devices")
    return [_device(_reg_dev_get(reg, i)) for i in range(_reg_dev_count(reg))]


def cpu_device() -> Device:
    """This machine's CPU device (the layers llama.cpp does not offload run there)."""
    C.llama_backend_init()
    return _device(_dev_by_type(DEVICE_CPU))


def local_devices() -> list[Device]:
    """What a worker serves, as llama.cpp's rpc-server picks: every GPU (discrete or
    integrated), else the CPU."""
    C.llama_backend_init()
    devices = [_device(_dev_get(i)) for i in range(_dev_count())]
    gpus = [d for d in devices if d.kind in (DEVICE_GPU, DEVICE_IGPU)]
    return gpus or [cpu_device()]


def start_server(endpoint: str, cache_dir: str | None, threads: int,
                 devices: list[Device]) -> None:
    """Serve `devices` on `endpoint` (an IPv4 `address:port`); blocks, one client at a time.
    Returns only when it could not start (the reason is on stderr)."""
    start = _StartServer(_proc("ggml_backend_rpc_start_server"))
    handles = (_vp * len(devices))(*(d.handle for d in devices))
    start(endpoint.encode(), cache_dir.encode() if cache_dir else None, max(1, threads),
          len(devices), handles)


def device_array(devices: list[Device]) -> ctypes.Array[ctypes.c_void_p]:
    """A NULL-terminated `ggml_backend_dev_t` array (`llama_model_params.devices`); keep it
    alive until the model has loaded."""
    return (_vp * (len(devices) + 1))(*(d.handle for d in devices), None)


class _GgufInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


_ggml_base = load_shared_library("ggml-base", pathlib.Path(llama_cpp.__file__).parent / "lib")
_gguf_init = _ggml_base.gguf_init_from_file
_gguf_init.restype, _gguf_init.argtypes = _vp, [ctypes.c_char_p, _GgufInitParams]
_gguf_free = _ggml_base.gguf_free
_gguf_free.restype, _gguf_free.argtypes = None, [_vp]
_gguf_find_key = _ggml_base.gguf_find_key
_gguf_find_key.restype, _gguf_find_key.argtypes = ctypes.c_int64, [_vp, ctypes.c_char_p]
_gguf_kv_type = _ggml_base.gguf_get_kv_type
_gguf_kv_type.restype, _gguf_kv_type.argtypes = ctypes.c_int, [_vp, ctypes.c_int64]
_gguf_str = _ggml_base.gguf_get_val_str
_gguf_str.restype, _gguf_str.argtypes = ctypes.c_char_p, [_vp, ctypes.c_int64]
_GGUF_INTS = {  # enum gguf_type → its getter and C type
    0: ("u8", ctypes.c_uint8), 1: ("i8", ctypes.c_int8), 2: ("u16", ctypes.c_uint16),
    3: ("i16", ctypes.c_int16), 4: ("u32", ctypes.c_uint32), 5: ("i32", ctypes.c_int32),
    10: ("u64", ctypes.c_uint64), 11: ("i64", ctypes.c_int64),
}
GGUF_TYPE_STRING = 8


def model_layers(path: str) -> int:
    """The model's repeating layers (`<arch>.block_count`), read from the GGUF header by
    ggml (metadata only: no weights, no vocabulary)."""
    ctx = _gguf_init(path.encode(), _GgufInitParams(True, None))
    if not ctx:
        raise RuntimeError(f"failed to read the GGUF header of {path}")
    try:
        arch_key = _gguf_find_key(ctx, b"general.architecture")
        if arch_key < 0 or _gguf_kv_type(ctx, arch_key) != GGUF_TYPE_STRING:
            raise RuntimeError(f"{path} names no architecture")
        key = _gguf_find_key(ctx, _gguf_str(ctx, arch_key) + b".block_count")
        getter = _GGUF_INTS.get(_gguf_kv_type(ctx, key)) if key >= 0 else None
        if getter is None:
            raise RuntimeError(f"{path} has no block_count")
        suffix, ctype = getter
        fn = getattr(_ggml_base, f"gguf_get_val_{suffix}")
        fn.restype, fn.argtypes = ctype, [_vp, ctypes.c_int64]
        return int(fn(ctx, key))
    finally:
        _gguf_free(ctx)
