"""The engine: llama.cpp in runner processes, one per loaded model, driven through a handle.

The only package that imports llama_cpp, and only in child processes (`runner`, `model`,
`sampling`, the quantizer's child); importing `pollama.engine` from the server loads nothing native.

    handle.py    RunnerHandle: start a runner process, stream completions, close it
    protocol.py  the newline-delimited JSON protocol between handle and runner
    runner.py    the runner process: slots, continuous batching, KV prefix reuse
    model.py     the llama.cpp objects one runner owns (model, context, batch)
    vision.py    images: the mtmd projector context, its worker thread, encoded-image cache
    kv_state.py  saved KV state on disk: slots resume prompts across runner restarts
    quantize.py  llama.cpp's quantizer in a child process (create -q), progress from its log
    rpc.py       RPC workers over the wire: probe, split plan, which ones went away
    rpc_backend.py  llama.cpp's RPC backend through ctypes (client devices, the server)
    placement.py which layers a runner puts on which RPC worker, read back from llama.cpp
    worker.py    `pollama worker`: one machine's devices served to other machines' runners
    sampling.py  Ollama options → llama.cpp's C sampler chain
    text.py      token bytes → text: whole UTF-8 characters, stop strings held back
    errors.py    RunnerStartError, RunnerCrashed, RpcWorkerLost, PromptTooLong, ...
"""

from pollama.engine.errors import (
    EngineError,
    PromptTooLong,
    RequestRejected,
    RpcWorkerLost,
    RunnerCrashed,
    RunnerError,
    RunnerStartError,
)
from pollama.engine.handle import Embeddings, RunnerHandle

__all__ = [
    "Embeddings",
    "EngineError",
    "PromptTooLong",
    "RequestRejected",
    "RpcWorkerLost",
    "RunnerCrashed",
    "RunnerError",
    "RunnerHandle",
    "RunnerStartError",
]
