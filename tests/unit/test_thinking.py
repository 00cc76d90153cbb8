"""ThinkingParser: Ollama's thinking split (GF-25), whole and streamed in every possible way."""

from __future__ import annotations

import pytest

from pollama.inference.thinking import ThinkingParser, lstrip_space, strip_thinking


def run(chunks: list[str], opening: str = "<think>", closing: str = "</think>",
        prompt: str = "") -> tuple[str, str]:
    parser = ThinkingParser(opening, closing)
    parser.prefill(prompt)
    thinking, content = [], []
    for chunk in chunks:
        t, c = parser.add(chunk)
        thinking.append(t)
        content.append(c)
    t, c = parser.flush()
    return "".join(thinking) + t, "".join(content) + c


WHOLE = [
    # (output, thinking, content)
    ("<think> internal </think> world", "internal ", "world"),
    ("<think>a</think><think>b</think>c", "a", "<think>b</think>c"),
    ("no think", "", "no think"),
    ("  abc", "", "  abc"),  # no tag: the white space belongs to the content
    ("  abc <think>def</think> ghi", "", "  abc <think>def</think> ghi"),
    ("\n\n<think>\n\nplan\n</think>\n\n answer\n", "plan\n", "answer\n"),
    ("<think></think>answer", "", "answer"),
    ("<think>only thinking", "only thinking", ""),
    ("<think>abc</thing>def</think>x", "abc</thing>def", "x"),
    ("", "", ""),
]


@pytest.mark.parametrize(("output", "thinking", "content"), WHOLE)
def test_whole_output(output: str, thinking: str, content: str) -> None:
    assert run([output]) == (thinking, content)


@pytest.mark.parametrize(("output", "thinking", "content"), WHOLE)
def test_every_split_point_gives_the_same_result(output: str, thinking: str,
                                                 content: str) -> None:
    for i in range(len(output) + 1):
        assert run([output[:i], output[i:]]) == (thinking, content), i
    assert run(list(output)) == (thinking, content)


def test_partial_tags_are_held_back_until_settled() -> None:
    parser = ThinkingParser()
    assert parser.add("  <th") == ("", "")
    assert parser.add("in") == ("", "")
    assert parser.add("k>a") == ("a", "")
    assert parser.add("bc</th") == ("bc", "")  # "</th" could be the closing tag
    assert parser.add("ing>d") == ("</thing>d", "")  # it was not
    assert parser.add("</thi") == ("", "")
    assert not parser.thinking_done
    assert parser.add("nk>  ") == ("", "")  # white space after the closing tag is eaten
    assert parser.thinking_done
    assert parser.add("  \n jkl ") == ("", "jkl ")
    assert parser.add(" mno") == ("", " mno")  # later white space is content


def test_white_space_after_the_opening_tag_is_eaten_across_chunks() -> None:
    parser = ThinkingParser()
    assert parser.add("<think>") == ("", "")
    assert parser.add("  \n") == ("", "")
    assert parser.add(" x") == ("x", "")


def test_prefilled_opening_tag_starts_in_thinking() -> None:
    assert run(["reasoning</think>answer"], prompt="<|im_start|>assistant\n<think>\n") == (
        "reasoning", "answer")
    # without the prefill the same output is all content
    assert run(["reasoning</think>answer"], prompt="<|im_start|>assistant\n") == (
        "", "reasoning</think>answer")


def test_template_tags() -> None:
    assert run(["◁think▷ hmm ◁/think▷ ok"], "◁think▷", "◁/think▷") == ("hmm ", "ok")
    assert run(["[THINK]a[/THINK]b"], "[THINK]", "[/THINK]") == ("a", "b")


def test_flush_returns_what_was_held() -> None:
    parser = ThinkingParser()
    assert parser.add("<think>abc</thi") == ("abc", "")
    assert parser.flush() == ("</thi", "")
    parser = ThinkingParser()
    assert parser.add(" <thi") == ("", "")
    assert parser.flush() == ("", " <thi")


def test_go_white_space() -> None:
    assert lstrip_space("\t\n\v\f\r \x85\xa0\u2003x ") == "x "
    assert lstrip_space("\x1cx") == "\x1cx"  # Python's isspace says yes, Go's IsSpace no


@pytest.mark.parametrize(("text", "content"), [
    ("<think>why</think>\n\nBecause.", "Because."),
    ("  <think>a\nb</think>Yes", "Yes"),
    ("No thinking here.", "No thinking here."),
    ("<think>never closed", ""),
    ("", ""),
    ("Text with <think>inside</think> stays.", "Text with <think>inside</think> stays."),
])
def test_strip_thinking(text: str, content: str) -> None:
    assert strip_thinking(text) == content
