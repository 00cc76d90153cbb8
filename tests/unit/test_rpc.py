"""RPC workers without a model: settings, the split plan, the load-log report, the tensor
cache journal, the worker's address rules, keepalive on real sockets, the wire probe against
a listener that never answers. The real workers and runners are in
tests/integration/test_rpc.py."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from pollama.config import Config
from pollama.engine import rpc
from pollama.engine.worker import Journal, WorkerError, is_loopback, listen_address, run


def _config(**env: str) -> Config:
    return Config.from_env({"HOME": "/tmp/none", **env})


def test_rpc_servers_parse_with_default_port():
    config = _config(OLLAMA_RPC_SERVERS=" host1:50052, 10.0.0.2 ,host3:7000,")
    assert config.rpc_servers == ("host1:50052", "10.0.0.2:50052", "host3:7000")
    assert config.serve_errors() == []


@pytest.mark.parametrize(("servers", "split", "wrong"), [
    ("host1:99999", "", "has no valid port"),
    ("[::1]:50052", "", "IPv4 only"),
    ("a:1,a:1", "", "names a worker twice"),
    ("a:1,b:2", "1,1", "takes one for this machine and one per"),
    ("a:1", "1,x", "not a list of shares"),
    ("a:1", "0,0", "not a list of shares"),
    ("a:1", "1,-1", "not a list of shares"),
    ("", "1,1", "OLLAMA_RPC_SERVERS names no worker"),
])
def test_bad_rpc_settings_stop_serve(servers, split, wrong):
    config = _config(OLLAMA_RPC_SERVERS=servers, OLLAMA_RPC_SPLIT=split)
    assert config.rpc_servers == () or config.rpc_split == ()
    assert any(wrong in e for e in config.serve_errors()), config.serve_errors()


def test_rpc_split_parses():
    config = _config(OLLAMA_RPC_SERVERS="a:1,b:2", OLLAMA_RPC_SPLIT="1, 1, 2.5")
    assert config.rpc_split == (1.0, 1.0, 2.5)
    assert config.serve_errors() == []


@pytest.mark.parametrize(("n_layer", "local", "devices", "num_gpu", "offloaded"), [
    (30, 1, [1, 1], None, 21),  # 31 layers (the output counts), two thirds away
    (30, 1, [1, 2], None, 23),
    (30, 0, [1, 1], None, 31),  # nothing stays here
    (30, 1, [0, 0], None, 0),  # workers with no share take nothing
    (30, 1, [1, 1], 5, 5),  # Ollama's num_gpu: how many layers leave this machine
    (30, 1, [1, 1], 999, 31),
    (30, 1, [], None, 0),
])
def test_split_plan(n_layer, local, devices, num_gpu, offloaded):
    split = rpc.plan_split(n_layer, local, devices, num_gpu)
    assert split.offloaded == offloaded
    assert split.tensor_split == (tuple(float(d) for d in devices) if sum(devices) else ())


def test_placement_report_reads_llama_cpp_load_log():
    pytest.importorskip("llama_cpp")
    from pollama.engine.placement import Placement
    from pollama.engine.rpc_backend import Device

    placement = Placement(
        devices=[Device(1, "RPC0", "127.0.0.1:5001"), Device(2, "RPC1", "127.0.0.1:5002")],
        endpoints=["127.0.0.1:5001", "127.0.0.1:5002"], indexes=[0, 0],
        split=rpc.Split(2, (1.0, 1.0)), skipped={})
    # llama.cpp's lines as its log callback hands them over: a layer names its device
    # (RPC0, RPC1: numbered in this process), a buffer its worker and device there.
    log = [
        "load_tensors: layer   0 assigned to device CPU, is_swa = 0\n",
        "load_tensors: layer   1 assigned to device RPC0, is_swa = 0\n",
        "load_tensors: layer   2 assigned to device RPC1, is_swa = 0\n",
        "load_tensors:   CPU_Mapped model buffer size =    92.10 MiB\n",
        "load_tensors: RPC0[127.0.0.1:5002] model buffer size =    28.69 MiB\n",
        "llama_kv_cache:        CPU KV buffer size =    11.25 MiB\n",
        "llama_kv_cache: RPC0[127.0.0.1:5001] KV buffer size =     1.00 MiB\n",
        "sched_reserve: RPC0[127.0.0.1:5002] compute buffer size =    97.12 MiB\n",
    ]
    mib = 1 << 20
    assert placement.report(log) == [
        {"name": "CPU", "layers": 1, "memory": round(92.10 * mib) + round(11.25 * mib)},
        {"name": "RPC[127.0.0.1:5001]", "layers": 1, "memory": mib},
        {"name": "RPC[127.0.0.1:5002]", "layers": 1,
         "memory": round(28.69 * mib) + round(97.12 * mib)},
    ]


def test_journal_removes_files_a_stop_cut_short(tmp_path: Path):
    old = tmp_path / "00000000000000aa"
    old.write_bytes(b"from an earlier session")
    past = time.time() - 3600
    os.utime(old, (past, past))
    journal = Journal(tmp_path)
    journal.start()
    whole = tmp_path / "00000000000000bb"
    whole.write_bytes(b"complete")
    journal.saved(whole.name)
    cut = tmp_path / "00000000000000cc"
    cut.write_bytes(b"half")  # written, never reported saved: the stop came mid-write
    assert journal.repair() == [cut.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".pollama-journal", old.name, whole.name]


def test_worker_listen_rules():
    assert listen_address("localhost:6000") == "127.0.0.1:6000"
    assert listen_address("127.0.0.1") == "127.0.0.1:50052"
    assert is_loopback("127.0.0.1:6000") and not is_loopback("0.0.0.0:6000")
    with pytest.raises(WorkerError, match="no valid port"):
        listen_address("127.0.0.1:0")
    with pytest.raises(WorkerError, match="--allow-remote") as err:
        run("0.0.0.0:6000")
    assert "no authentication" in str(err.value)


def test_keepalive_set_on_the_runner_connections():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        with socket.create_connection(listener.getsockname()) as conn, \
                socket.create_connection(("127.0.0.1", listener.getsockname()[1])) as other:
            accepted, _ = listener.accept()
            with accepted:
                assert rpc.keep_alive_connections([endpoint]) == 2  # both go to the worker
                for sock in (conn, other):
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == \
                        rpc.USER_TIMEOUT_MS
                # the accepted end's peer is the client port, not the worker: left alone
                assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def test_probe_reports_a_busy_or_absent_worker():
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never answers
        port = listener.getsockname()[1]
        with pytest.raises(rpc.WorkerUnavailable, match="busy"):
            rpc.probe(f"127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(rpc.WorkerUnavailable, match="connection refused"):
        rpc.probe(f"127.0.0.1:{port}", timeout=0.5)


def test_unreachable_names_gone_workers_not_busy_ones():
    import asyncio
    import threading

    with socket.create_server(("127.0.0.1", 0)) as busy, \
            socket.create_server(("127.0.0.1", 0)) as dying:
        def hang_up() -> None:  # accepts, then closes without a word: a worker on its way out
            conn, _ = dying.accept()
            conn.close()

        threading.Thread(target=hang_up, daemon=True).start()
        with socket.create_server(("127.0.0.1", 0)) as closed:
            gone_port = closed.getsockname()[1]
        endpoints = [f"127.0.0.1:{s.getsockname()[1]}" for s in (busy, dying)]
        endpoints.append(f"127.0.0.1:{gone_port}")
        gone = asyncio.run(rpc.unreachable(endpoints, timeout=0.5))
    assert set(gone) == set(endpoints[1:])  # the busy one is there
    assert gone[endpoints[1]] in ("the worker closed the connection", "connection reset by peer")
    assert gone[endpoints[2]] == "connection refused"
