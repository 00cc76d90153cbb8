"""engine.text.TextStream: whole characters out, stop strings held back, cut, and named."""

from __future__ import annotations

from pollama.engine.text import TextStream


def feed(stream: TextStream, pieces: list[bytes]) -> str:
    out = ""
    for piece in pieces:
        out += stream.push(piece)
        if stream.stopped:
            break
    return out + ("" if stream.stopped else stream.flush())


def test_a_character_split_across_tokens_waits_for_its_last_byte():
    stream = TextStream()
    euro = "€".encode()
    assert stream.push(euro[:1]) == "" and stream.push(euro[1:]) == "€"


def test_a_stop_string_across_tokens_is_cut_and_named():
    stream = TextStream(["END", "STOP"])
    assert feed(stream, [b"one ", b"tw", b"o ST", b"OP three"]) == "one two "
    assert stream.stopped and stream.matched == "STOP"


def test_the_earliest_stop_wins():
    stream = TextStream(["b", "a"])
    assert feed(stream, [b"xab"]) == "x" and stream.matched == "a"


def test_a_prefix_that_never_completes_is_released():
    stream = TextStream(["END"])
    assert feed(stream, [b"the EN", b"D"]) == "the " and stream.matched == "END"
    other = TextStream(["END"])
    assert feed(other, [b"the EN", b"ding"]) == "the ENding"
    assert not other.stopped and other.matched is None
