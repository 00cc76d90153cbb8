"""GGUF chat templates run in a strict sandbox: a template that reaches for Python internals,
mutates its input or builds huge values fails with a ChatTemplateError naming why, and nothing
it asked for runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pollama.template.jinja import ChatTemplateError, render

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("source", "why"), [
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "'__class__' of 'str'"),
    ("{{ ''|attr('__class__') }}", "'__class__' of 'str'"),
    ("{{ '{0.__class__}'.format('') }}", "'__class__' of 'str'"),
    ("{{ cycler.__init__.__globals__.os.system('touch {marker}') }}", "'__init__' of 'type'"),
    ("{{ joiner.__init__.__globals__['os'].system('touch {marker}') }}", "'__init__' of 'type'"),
    ("{{ namespace.__init__.__globals__ }}", "'__init__' of 'type'"),
    ("{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
     "'__globals__' of 'function'"),
    ("{{ raise_exception.__globals__ }}", "'__globals__' of 'function'"),
    ("{{ strftime_now.__globals__['datetime'] }}", "'__globals__' of 'function'"),
    ("{{ self.__init__.__globals__ }}", "'__init__' of 'TemplateReference'"),
    ("{% for m in messages %}{{ m.__class__ }}{% endfor %}", "'__class__' of 'dict'"),
    ("{{ messages.append({'role': 'system'}) }}", "'append' of 'list'"),
    ("{{ messages[0].update(content='x') }}", "'update' of 'dict'"),
    ("{{ 'a' * 100000000 }}", "'*' would build 100000000 items"),
    ("{{ [0] * 10000000 }}", "'*' would build 10000000 items"),
    ("{{ 2 ** 1000000 }}", "'**' would build an integer too large"),
    ("{% for i in range(10 ** 9) %}{% endfor %}", "Range too big"),
    ("{{ 1 / 0 }}", "division by zero"),
    ("{{ raise_exception('no system role') }}", "no system role"),
])
def test_hostile_templates_fail_cleanly_and_run_nothing(tmp_path: Path, source: str, why: str):
    marker = tmp_path / "ran"
    with pytest.raises(ChatTemplateError) as err:
        render(source.replace("{marker}", str(marker)), MESSAGES)
    assert why in str(err.value)
    assert not marker.exists()
    assert MESSAGES == [{"role": "user", "content": "hi"}]


def test_ordinary_templates_still_render():
    source = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{{ '-' * 3 }}"
              "{{ m.get('name', '') }}{% endfor %}{{ 2 ** 10 }}{{ messages | length }}"
              "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    assert render(source, MESSAGES) == "<|user|>hi---10241<|assistant|>"
