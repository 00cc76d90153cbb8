"""How a pull cuts a blob: parts (state files), chunks (ranged GETs), streams; where a name is
pulled from."""

from __future__ import annotations

import pytest

from pollama.names import parse
from pollama.registry import ranges
from pollama.registry.client import RegistryClient
from pollama.registry.download import (
    FIRST_CHUNK_SIZE,
    MAX_STREAMS,
    MIN_CHUNK_SIZE,
    ChunkCursor,
    Part,
    StreamScaler,
    part_sizes,
)
from pollama.registry.errors import RegistryError

MB = 1000 * 1000


def parts_for(total: int) -> list[Part]:
    return [Part(i, off, size) for i, (off, size) in enumerate(part_sizes(total))]


def test_chunks_cover_the_missing_bytes_in_order_and_never_cross_parts() -> None:
    parts = parts_for(650 * MB)  # 6 parts of 100 MB and one of 50 MB
    parts[0].completed = 30 * MB  # left by an earlier attempt
    parts[2].completed = parts[2].size
    cursor = ChunkCursor(parts)
    assert cursor.remaining == 650 * MB - 130 * MB
    chunks = []
    rate = None
    while cursor:
        chunks.append(cursor.take(streams=1, rate=rate))
        rate = 40 * MB  # the stream's measured rate: about one second per chunk
    assert chunks[0].offset == 30 * MB and chunks[0].size == FIRST_CHUNK_SIZE
    merged: list[tuple[int, int]] = []
    for chunk in chunks:  # back to back, in order
        if merged and merged[-1][1] == chunk.offset:
            merged[-1] = (merged[-1][0], chunk.offset + chunk.size)
        else:
            merged.append((chunk.offset, chunk.offset + chunk.size))
    assert merged == [(30 * MB, 200 * MB), (300 * MB, 650 * MB)]
    for chunk in chunks:  # inside one part each
        assert chunk.offset // (100 * MB) == (chunk.offset + chunk.size - 1) // (100 * MB)
    assert all(c.size <= 40 * MB for c in chunks[1:])


def test_one_stream_takes_a_second_of_transfer_and_several_shrink_toward_the_end() -> None:
    cursor = ChunkCursor(parts_for(2000 * MB))
    alone = cursor.take(streams=1, rate=900 * MB)
    assert alone.size == 125 * MB  # the rest of the first part: no cut without other streams
    taken = []
    while cursor:
        before = cursor.remaining
        taken.append((before, cursor.take(streams=4, rate=50 * MB).size))
    assert taken[0][1] == 50 * MB  # a second at the stream's rate
    assert sum(size for _, size in taken) == 2000 * MB - alone.size
    for before, size in taken:  # guided: at most 1/8 of what is left (4 streams), or 8 MB
        assert size <= max(MIN_CHUNK_SIZE, -(-before // 8))
    assert taken[-1][1] <= MIN_CHUNK_SIZE


def test_part_state_counts_only_the_written_prefix() -> None:
    part = Part(0, 0, 100 * MB, completed=10 * MB)
    cursor = ChunkCursor([part])
    first, second = cursor.take(2, 20 * MB), cursor.take(2, 20 * MB)
    second.got = second.size  # out of order: not yet part of the prefix
    first.got = 5 * MB
    assert part.written == 15 * MB
    assert part.received == 15 * MB + second.size
    assert b'"Completed":15000000' in part.to_json()
    first.got = first.size
    assert part.written == 10 * MB + first.size + second.size


def test_streams_double_while_it_pays_then_go_back() -> None:
    scaler = StreamScaler(now=0.0)
    assert scaler.streams == 1

    def run_until(t: float, received: int) -> int:
        return scaler.update(t, received)

    # 1 stream: settle, then a measured rate of 10 MB/s.
    assert run_until(StreamScaler.SETTLE, 0) == 1
    t = StreamScaler.SETTLE + StreamScaler.MEASURE
    assert run_until(t, 5 * MB) == 2
    # 2 streams give twice the rate: keep doubling.
    t0 = t + StreamScaler.SETTLE
    assert run_until(t0, 100 * MB) == 2
    assert run_until(t0 + StreamScaler.MEASURE, 110 * MB) == 4
    # 4 streams give no more: back to 2, and stay there.
    t1 = t0 + StreamScaler.MEASURE + StreamScaler.SETTLE
    assert run_until(t1, 200 * MB) == 4
    assert run_until(t1 + StreamScaler.MEASURE, 210 * MB) == 2
    assert scaler.settled and scaler.next_check(100.0) is None
    assert run_until(1000.0, 10_000 * MB) == 2


def test_streams_stop_at_the_maximum() -> None:
    scaler = StreamScaler(now=0.0)
    t, received, rate = 0.0, 0, 1 * MB
    while not scaler.settled:
        step = scaler.next_check(t)
        assert step is not None
        t += step
        received += int(rate * step * scaler.streams)  # every stream adds its full rate
        scaler.update(t, received)
    assert scaler.streams == MAX_STREAMS


class Answer:
    def __init__(self, status: int, **headers: str) -> None:
        self.status = status
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}

    def getheader(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


def test_total_size_from_the_answer() -> None:
    assert ranges._total_size(Answer(206, content_range="bytes 16-31/98362432"), 16) == 98362432
    assert ranges._total_size(Answer(206, content_range="bytes 16-31/*"), 16) is None
    assert ranges._total_size(Answer(200, content_length="1234"), 0) == 1234
    with pytest.raises(RegistryError, match="answered a range"):
        ranges._total_size(Answer(206, content_range="bytes 0-31/100"), 16)


@pytest.mark.parametrize(("model", "url"), [
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
     "https://hf.co/v2/bartowski/Llama-3.2-1B-Instruct-GGUF/manifests/Q4_K_M"),
    ("huggingface.co/unsloth/gemma-3-1b-it-GGUF",
     "https://huggingface.co/v2/unsloth/gemma-3-1b-it-GGUF/manifests/latest"),
    ("llama3.2", "https://registry.ollama.ai/v2/library/llama3.2/manifests/latest"),
])
def test_hugging_face_names_are_registry_names(model: str, url: str) -> None:
    """hf.co speaks the registry protocol Ollama pulls with (pull.py says more)."""
    name = parse(model)
    client = RegistryClient(name)
    assert client.url("manifests", name.tag) == url
