"""Templates that would never end are stopped: big numbers, huge strings and lists, runaway
loops and catastrophic regular expressions fail with the engine's own TemplateError, fast."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.core.errors import InvalidInputsError
from flowdeck.engine.engine import Engine
from flowdeck.engine.inputs import InputDef, resolve_inputs
from flowdeck.engine.template_limits import RENDER_BUDGET_S
from flowdeck.engine.templating import TemplateError, TemplateRenderer
from helpers import apply, cpu_time, run_flow

EVIL = "a" * 40 + "!"
#: Ten references to one 1 MB string: cheap to hold, 10 MB once written out.
BIG_LIST = "{% set b = 'x' * 1000000 %}{% set l = [b, b, b, b, b, b, b, b, b, b] %}"
#: A list holding itself twice, sixty times over: 2**60 leaves once written out.
DOUBLED = ("{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}"
           "{% endfor %}")
CONTEXT = {"inputs": {"text": EVIL, "n": 10**9}, "outputs": {"t": {"items": list(range(10))}}}


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def refused(renderer: TemplateRenderer, template: str) -> str:
    with cpu_time() as spent, pytest.raises(TemplateError) as info:
        renderer.render(template, CONTEXT)
    assert spent.seconds < 0.3, f"{template!r} took {spent.seconds:.2f} s of CPU"
    return info.value.reason


@pytest.mark.parametrize("template", [
    "{{ 9 ** (9 ** 7) }}",
    "{{ 2 ** 100000 }}",
    "{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}",
    "{{ 'x' * 10 ** 9 }}",
    "{{ 10 ** 9 * 'x' }}",
    "{{ [1, 2] * inputs.n }}",
    "{{ 'ab' * 100000 * 100000 }}",
    "{{ ('x' * 1000000) ~ ('x' * 1000000) ~ ('x' * 1000000) * 10 }}",
    "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(100) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{{ 'x'.center(10 ** 9) }}",
    "{{ 'x'.ljust(10 ** 9) }}",
    "{{ 'x'.zfill(10 ** 9) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x' | center(10 ** 9) }}",
    "{{ 'a\nb' | indent(10 ** 9) }}",
    "{{ 'ab' | replace('', 'y' * 5000000) }}",
    "{{ ('ab' * 1000) | replace({'': 'y' * 100000}) }}",
    "{{ [1] | batch(10 ** 9, 0) | list }}",
    "{{ [1, 2] | slice(10 ** 9) | list }}",
    "{{ (['x' * 1000000] * 1000) | join }}",
    BIG_LIST + "{{ l | join }}",
    BIG_LIST + "{{ l | toJson }}",
    BIG_LIST + "{{ l | string }}",
    BIG_LIST + "{{ l ~ '' }}",
    BIG_LIST + "{{ l }}",
    DOUBLED + "{{ ns.a }}",
    DOUBLED + "{{ ns.a | toJson }}",
    DOUBLED + "{{ ns.a ~ '' }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set x = range(100000) %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{{ inputs.text | replace({'(a|aa)+$': 'x'}, regexp=true) }}",
    "{{ inputs.text | replace('(a|a)+$', 'x', regexp=true) }}",
    "{{ inputs.text | split('(a|aa)+$') }}",
])
def test_costly_templates_are_refused_quickly(renderer: TemplateRenderer, template: str) -> None:
    refused(renderer, template)


def test_the_reasons_say_what_was_refused(renderer: TemplateRenderer) -> None:
    assert "too large" in refused(renderer, "{{ 9 ** (9 ** 7) }}")
    assert "too long" in refused(renderer, "{{ 'x' * 10 ** 9 }}")
    assert "regular expression" in refused(
        renderer, "{{ inputs.text | replace({'(a|aa)+$': 'x'}, regexp=true) }}")
    assert "ms" in refused(
        renderer, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                  "{% endfor %}")


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ 2 ** 64 }}", str(2**64)),
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ ([1] * 3) | length }}", "3"),
    ("{{ ('x' * 100000) | length }}", "100000"),
    ("{{ 'x'.center(5) }}", "  x  "),
    ("{{ '%05d' % 42 }}", "00042"),
    ("{{ '{:>4}'.format(7) }}", "   7"),
    ("{{ 'v1.2' | replace({'(\\\\d+)\\\\.(\\\\d+)': '$2.$1'}, regexp=true) }}", "v2.1"),
    ("{{ 'a1b22c' | split('\\\\d+') }}", '["a","b","c"]'),
    ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
    ("{% for i in outputs.t['items'] if i > 7 %}{{ loop.index }}{{ i }}{% endfor %}", "1829"),
    ("{{ [[1], [2]] | sum(start=[]) }}", "[1,2]"),
    ("{{ ['a', 'b'] | join(',') }}", "a,b"),
    ("{{ range(5) | batch(2) | list }}", "[[0,1],[2,3],[4]]"),
])
def test_ordinary_templates_still_render(renderer: TemplateRenderer, template: str,
                                         expected: str) -> None:
    assert renderer.render(template, CONTEXT) == expected


def test_a_catastrophic_input_validator_is_refused_quickly() -> None:
    declared = [InputDef(id="code", type="STRING", validator="(a|aa)+$")]
    with cpu_time() as spent, pytest.raises(InvalidInputsError,
                                            match=r"inputs\.code: .*took too long"):
        resolve_inputs(declared, {"code": EVIL})
    assert spent.seconds < 0.3
    assert resolve_inputs(declared, {"code": "aaa"}) == {"code": "aaa"}


async def test_a_task_whose_template_never_ends_fails_and_the_loop_keeps_going(
        engine: Engine) -> None:
    await apply(engine, """
        id: heavy
        namespace: t.templates
        tasks:
          - id: spin
            type: io.kestra.plugin.core.log.Log
            message: >-
              {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}
          - id: power
            type: io.kestra.plugin.core.log.Log
            message: "{{ 9 ** (9 ** 7) }}"
        """)
    # The event loop's thread renders; it spends about the render budget, not minutes.
    with cpu_time() as on_loop:
        done = await run_flow(engine, "t.templates", "heavy", timeout=10)
    assert done.state.current == "FAILED"
    errors = [e.message for e in await engine.logs.fetch(done.id) if e.level == "ERROR"]
    assert errors[0].startswith("task 'spin' failed: cannot render '{% for i in range(100000)")
    assert f"took more than {RENDER_BUDGET_S * 1000:.0f} ms" in errors[0]
    assert on_loop.seconds < 0.5, f"the event loop's thread spent {on_loop.seconds:.2f} s"
    await apply(engine, """
        id: power
        namespace: t.templates
        tasks:
          - id: power
            type: io.kestra.plugin.core.log.Log
            message: "{{ 9 ** (9 ** 7) }}"
        """)
    done = await run_flow(engine, "t.templates", "power", timeout=10)
    errors = [e.message for e in await engine.logs.fetch(done.id) if e.level == "ERROR"]
    assert errors == ["task 'power' failed: cannot render '{{ 9 ** (9 ** 7) }}': the result "
                      "would be too large (more than 4096 bits)"]


ATOMS = ["1", "9", "10 ** 5", "'x'", "'ab'", "[1, 2]", "inputs.n", "inputs.text",
         "outputs.t['items']", "range(5)", "range(100000)", "none", "true", "(2 ** 64)"]
OPERATORS = [" * ", " ** ", " + ", " ~ ", " // ", " % ", " - "]
FILTERS = ["", " | length", " | string", " | toJson", " | join", " | upper",
           " | replace({'(a|aa)+$': 'b'}, regexp=true)", " | split('a*')", " | list",
           " | center(999999)", " | batch(3) | list", " | sum", " | first"]


@st.composite
def expressions(draw: Any, depth: int = 0) -> str:
    if depth >= 3 or draw(st.booleans()):
        return str(draw(st.sampled_from(ATOMS)))
    left = draw(expressions(depth + 1))
    right = draw(expressions(depth + 1))
    op = draw(st.sampled_from(OPERATORS))
    tail = draw(st.sampled_from(FILTERS))
    return f"({left}{op}{right}){tail}"


@settings(max_examples=200, deadline=None)
@given(expressions(), st.sampled_from(["{{ %s }}", "{%% for x in %s %%}{{ x }}{%% endfor %%}",
                                       "{%% set y = %s %%}{{ y ~ y }}"]))
def test_any_expression_renders_or_fails_with_a_template_error_quickly(
        expression: str, shape: str) -> None:
    renderer = TemplateRenderer()
    template = shape % expression
    with cpu_time() as spent:
        try:
            result = renderer.render(template, CONTEXT)
        except TemplateError:
            pass
        else:
            assert isinstance(result, str)
    assert spent.seconds < 1.0, template
