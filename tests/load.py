"""A load driver for a real `pollama serve`, shared by the load tests and bench/bench_load.py.

`run_load` sends `total` requests from `clients` concurrent clients (each sends its next request
when its last one is answered), cycling through the kinds a user's tools send: native generate
and chat, streamed and not, OpenAI chat completions streamed and not, and /api/embed. Each
request ends as an `Outcome`: answered in full (200, a stream that ended with its last chunk),
refused with Ollama's 503 text, or anything else (a wrong status, a stream that broke or carried
an error, a client timeout), which the tests count as a failure.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BUSY = "server busy, please try again.  maximum pending requests exceeded"
KINDS = ("generate", "generate-stream", "chat", "chat-stream", "openai", "openai-stream",
         "embed")
PROMPTS = ("Name a colour.", "Say hello.", "What is two plus two?", "Name a fruit.",
           "Give me one word.", "Name an animal.", "What day comes after Monday?")


@dataclass
class Outcome:
    kind: str
    status: int  # 200 answered, 503 refused as Ollama does, anything else a failure (-1: none)
    seconds: float
    problem: str = ""  # what was wrong, for anything but a clean 200 or a clean 503

    @property
    def ok(self) -> bool:
        return not self.problem and self.status in (200, 503)


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: int) -> int:
        return sum(1 for o in self.outcomes if o.status == status and o.ok)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def latencies(self) -> list[float]:
        return sorted(o.seconds for o in self.outcomes if o.ok and o.status == 200)

    def by_kind(self) -> str:
        """p50 and slowest latency of each kind, e.g. `chat 1.2/3.4 s`."""
        parts = []
        for kind in sorted({o.kind for o in self.outcomes}):
            lat = sorted(o.seconds for o in self.outcomes
                         if o.kind == kind and o.ok and o.status == 200)
            if lat:
                parts.append(f"{kind} {percentile(lat, 50):.1f}/{lat[-1]:.1f} s")
        return ", ".join(parts)

    def summary(self) -> str:
        lat = self.latencies()
        kinds = Counter(o.kind for o in self.outcomes if o.status == 200 and o.ok)
        return (f"{len(self.outcomes)} requests in {self.seconds:.1f} s: {self.count(200)} "
                f"answered, {self.count(503)} busy (503), {len(self.failures)} failed; latency "
                f"p50 {percentile(lat, 50):.2f} s, p99 {percentile(lat, 99):.2f} s; "
                f"answered by kind {dict(sorted(kinds.items()))}")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values` (nan when empty)."""
    if not values:
        return math.nan
    rank = max(math.ceil(p / 100 * len(values)), 1)
    return values[min(rank, len(values)) - 1]


def request_for(kind: str, model: str, n: int, num_predict: int) -> tuple[str, dict[str, Any]]:
    prompt = PROMPTS[n % len(PROMPTS)]
    options = {"num_predict": num_predict, "temperature": 0, "seed": n}
    messages = [{"role": "user", "content": prompt}]
    stream = kind.endswith("-stream")
    if kind.startswith("generate"):
        return "/api/generate", {"model": model, "prompt": prompt, "stream": stream,
                                 "options": options}
    if kind.startswith("chat"):
        return "/api/chat", {"model": model, "messages": messages, "stream": stream,
                             "options": options}
    if kind.startswith("openai"):
        return "/v1/chat/completions", {"model": model, "messages": messages, "stream": stream,
                                        "max_tokens": num_predict, "temperature": 0, "seed": n}
    return "/api/embed", {"model": model, "input": [prompt, f"{prompt} {n}"]}


def _busy_text(kind: str, body: Any) -> str:
    if kind.startswith("openai"):
        return str(((body or {}).get("error") or {}).get("message"))
    return str((body or {}).get("error"))


def _check_answer(kind: str, status: int, raw: bytes) -> str:
    """What is wrong with a 200 answer ("" when nothing)."""
    text = raw.decode(errors="replace")
    if kind.endswith("-stream") and kind.startswith("openai"):
        frames = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        if not frames or frames[-1] != "[DONE]":
            return f"stream did not end with [DONE]: {text[-200:]!r}"
        for frame in frames[:-1]:
            if "error" in json.loads(frame):
                return f"error frame: {frame}"
        return ""
    if kind.endswith("-stream"):
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        if any("error" in line for line in lines):
            return f"error line: {lines[-1]}"
        if not lines or lines[-1].get("done") is not True:
            return f"stream did not end with done: {text[-200:]!r}"
        return ""
    body = json.loads(text)
    if kind == "embed":
        return "" if len(body.get("embeddings", [])) == 2 else f"no embeddings: {text[:200]}"
    if kind == "openai":
        return "" if body.get("choices") else f"no choices: {text[:200]}"
    return "" if body.get("done") is True else f"not done: {text[:200]}"


async def one_request(client: httpx.AsyncClient, kind: str, model: str, n: int,
                      num_predict: int) -> Outcome:
    path, body = request_for(kind, model, n, num_predict)
    start = time.perf_counter()
    try:
        async with client.stream("POST", path, json=body) as response:
            raw = await response.aread()
    except httpx.HTTPError as err:
        return Outcome(kind, -1, time.perf_counter() - start, f"{type(err).__name__}: {err}")
    seconds = time.perf_counter() - start
    status = response.status_code
    if status == 503:
        try:
            said = _busy_text(kind, json.loads(raw))
        except ValueError:
            said = raw.decode(errors="replace")
        return Outcome(kind, 503, seconds, "" if said == BUSY else f"503 saying {said!r}")
    if status != 200:
        return Outcome(kind, status, seconds, raw.decode(errors="replace")[:300])
    try:
        problem = _check_answer(kind, status, raw)
    except (ValueError, AttributeError, TypeError) as err:
        problem = f"unreadable answer ({err}): {raw[:200]!r}"
    return Outcome(kind, 200, seconds, problem)


async def _run(url: str, model: str, total: int, clients: int, kinds: tuple[str, ...],
               num_predict: int, timeout: float) -> Report:
    report = Report()
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def worker() -> None:
            for n in counter:
                report.outcomes.append(await one_request(
                    client, kinds[n % len(kinds)], model, n, num_predict))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        report.seconds = time.perf_counter() - start
    return report


def run_load(url: str, model: str, *, total: int, clients: int,
             kinds: tuple[str, ...] = KINDS, num_predict: int = 8,
             timeout: float = 600) -> Report:
    """`total` requests from `clients` concurrent clients; a request still unanswered after
    `timeout` seconds counts as hung (a failure)."""
    return asyncio.run(_run(url, model, total, clients, kinds, num_predict, timeout))


# -- memory -----------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the server's runners)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields follow the last ")"
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def memory(server_pid: int) -> tuple[int, int]:
    """(server RSS, summed RSS of its child processes) in bytes."""
    return rss_bytes(server_pid), sum(rss_bytes(c) for c in children(server_pid))
