from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.templating import TemplateError, TemplateRenderer, has_expression


def _kv(key: str) -> Any:
    store = {"API_URL": "https://example.test", "LIMIT": 10}
    if key not in store:
        raise KeyError(f"no key {key!r} in the KV store")
    return store[key]


CONTEXT: dict[str, Any] = {
    "inputs": {"name": "Ada", "nothing": None, "zero": 0, "empty": "", "off": False},
    "outputs": {
        "extract": {"value": "raw", "rows": [{"id": 1}, {"id": 2}], "items": ["a", "b"]},
        "my-task": {"uri": "kestra:///x.csv"},
        "config": {"retries": 3, "enabled": True, "tags": ["x", "y"], "owner": None},
    },
    "vars": {"env": "prod", "nested": {"deep": {"level": 3}}},
    "execution": {
        "id": "4wjLkVYzPSXnATpG0TWbCo",
        "startDate": "2024-03-05T14:07:09.123456Z",
        "state": "RUNNING",
        "originalId": "4wjLkVYzPSXnATpG0TWbCo",
    },
    "flow": {"id": "hello", "namespace": "company.team", "revision": 4},
    "trigger": {
        "date": "2024-01-02T03:04:05Z",
        "next": "2024-01-02T04:04:05Z",
        "previous": "2024-01-02T02:04:05Z",
    },
    "taskrun": {
        "id": "tr1",
        "startDate": "2024-03-05T14:07:10Z",
        "attemptsCount": 2,
        "value": "item-b",
        "parentId": "tr0",
    },
    "parent": {"taskrun": {"value": "item-a", "id": "tr0"}, "outputs": {"size": 5}},
    "envs": {"home": "/home/ada"},
    "labels": {"team": "data"},
    "kv": _kv,
}


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def render(renderer: TemplateRenderer, template: str, **extra: Any) -> str:
    return renderer.render(template, {**CONTEXT, **extra})


def reason_of(renderer: TemplateRenderer, template: str, **extra: Any) -> str:
    with pytest.raises(TemplateError) as info:
        render(renderer, template, **extra)
    return info.value.reason


# -- context roots --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ inputs.name }}!", "Hello Ada!"),
        ("{{ outputs.extract.value }}", "raw"),
        ("{{ outputs['my-task'].uri }}", "kestra:///x.csv"),
        ("{{ outputs.extract.rows[1].id }}", "2"),
        ("{{ vars.env }}-{{ vars.nested.deep.level }}", "prod-3"),
        ("{{ execution.id }}/{{ execution.state }}", "4wjLkVYzPSXnATpG0TWbCo/RUNNING"),
        ("{{ execution.originalId }}", "4wjLkVYzPSXnATpG0TWbCo"),
        ("{{ flow.namespace }}.{{ flow.id }}@{{ flow.revision }}", "company.team.hello@4"),
        ("{{ trigger.date }} {{ trigger.next }}", "2024-01-02T03:04:05Z 2024-01-02T04:04:05Z"),
        ("{{ taskrun.value }} #{{ taskrun.attemptsCount }}", "item-b #2"),
        ("{{ taskrun.parentId }}", "tr0"),
        ("{{ parent.taskrun.value }}:{{ parent.outputs.size }}", "item-a:5"),
        ("{{ envs.home }}", "/home/ada"),
        ("{{ labels.team }}", "data"),
        ("{{ kv('API_URL') }}/{{ kv('LIMIT') + 1 }}", "https://example.test/11"),
    ],
)
def test_context_roots(renderer: TemplateRenderer, template: str, expected: str) -> None:
    assert render(renderer, template) == expected


def test_webhook_trigger_context(renderer: TemplateRenderer) -> None:
    trigger = {"body": {"event": "push"}, "headers": {"X-Id": ["7"]}, "parameters": {"q": "1"}}
    out = render(
        renderer,
        "{{ trigger.body.event }} {{ trigger.headers['X-Id'][0] }} {{ trigger.parameters.q }}",
        trigger=trigger,
    )
    assert out == "push 7 1"


def test_no_root_is_assumed(renderer: TemplateRenderer) -> None:
    assert renderer.render("{{ 1 + 2 }}", {}) == "3"
    assert renderer.render("{{ inputs.name ?? 'anon' }}", {}) == "anon"
    with pytest.raises(TemplateError) as info:
        renderer.render("{{ inputs.name }}", {})
    assert info.value.reason == "'inputs' is undefined"


def test_map_keys_win_over_methods(renderer: TemplateRenderer) -> None:
    # Pebble reads map keys first: a task output called "items" is the data, not dict.items.
    assert render(renderer, "{{ outputs.extract.items }}") == '["a","b"]'
    assert render(renderer, "{{ outputs.extract.items | join('+') }}") == "a+b"


# -- ?? ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.missing ?? 'world' }}", "world"),
        ("{{ nobody ?? 'world' }}", "world"),
        ("{{ inputs.nothing ?? 'was null' }}", "was null"),
        ("{{ inputs.name ?? 'world' }}", "Ada"),
        ("{{ inputs.zero ?? 5 }}", "0"),
        ("[{{ inputs.empty ?? 'x' }}]", "[]"),
        ("{{ inputs.off ?? true }}", "false"),
        ("{{ outputs.a.b ?? outputs.c.d ?? 'x' }}", "x"),
        ("{{ outputs.a.b ?? outputs.extract.value ?? 'x' }}", "raw"),
        ("{{ outputs.nope.rows[3].id ?? 'none' }}", "none"),
        ("{{ outputs['nope']['x'] ?? outputs['my-task'].uri }}", "kestra:///x.csv"),
        ("{{ inputs.missing??'tight' }}", "tight"),
        ("{{ inputs.missing ?? inputs.name ~ '!' }}", "Ada!"),
        ("{{ 'hi ' ~ inputs.missing ?? 'there' }}", "hi there"),
        ("{{ (inputs.missing ?? 2) * 3 }}", "6"),
        ("{{ inputs.missing ?? 2 * 3 }}", "6"),
        ("{{ [inputs.missing ?? 1, inputs.zero ?? 9] }}", "[1,0]"),
        ("{{ {'k': inputs.missing ?? 'v'} }}", '{"k":"v"}'),
        ("{{ outputs.config.owner ?? 'nobody' | upper }}", "NOBODY"),
        ("{{- inputs.missing ?? 'ws' -}}  ", "ws"),
    ],
)
def test_coalesce(renderer: TemplateRenderer, template: str, expected: str) -> None:
    assert render(renderer, template) == expected


def test_coalesce_inside_statements(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{% if inputs.missing ?? false %}yes{% else %}no{% endif %}") == "no"
    assert render(renderer, "{% if inputs.missing ?? true %}yes{% else %}no{% endif %}") == "yes"
    assert render(renderer, "{% if inputs.nothing ?? 'a' == 'a' %}eq{% endif %}") == "eq"
    assert render(renderer, "{% if false %}a{% elif outputs.x.y ?? 1 %}b{% endif %}") == "b"
    assert render(renderer, "{% for r in outputs.none.rows ?? [7, 8] %}{{ r }};{% endfor %}") == (
        "7;8;"
    )
    loop = "{% for k, v in outputs.zz ?? {'a': 1} | dictsort %}{{ k }}={{ v }}{% endfor %}"
    assert render(renderer, loop) == "a=1"
    assert render(renderer, "{% set who = inputs.missing ?? 'bob' %}{{ who }}") == "bob"


def test_coalesce_filters_apply_to_the_chosen_value(renderer: TemplateRenderer) -> None:
    # As in Kestra: `??` binds tighter than `|`, so the filter formats whichever side won.
    template = "{{ trigger.date ?? execution.startDate | date('yyyy-MM-dd') }}"
    assert render(renderer, template) == "2024-01-02"
    assert render(renderer, template, trigger={}) == "2024-03-05"
    assert render(renderer, "{{ inputs.name ?? 'a' | upper }}") == "ADA"
    assert render(renderer, "{{ inputs.missing ?? 'a' | upper }}") == "A"
    # A filter chain on the left belongs to the left operand.
    assert render(renderer, "{{ inputs.name | lower ?? 'x' }}") == "ada"
    assert render(renderer, "{{ inputs.nothing | default(none) ?? 'fallback' }}") == "fallback"


def test_coalesce_ignores_quoted_and_raw_text(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{{ 'what ?? now' }}") == "what ?? now"
    assert render(renderer, "{{ inputs.missing ?? 'a }} ?? b' }}") == "a }} ?? b"
    assert render(renderer, '{{ inputs.missing ?? "say \\"??\\" }}" }}') == 'say "??" }}'
    assert render(renderer, "{{ 'x' ~ (inputs.zz ?? '%}') }}") == "x%}"
    assert render(renderer, "Really?? {{ inputs.name }}??") == "Really?? Ada??"
    assert render(renderer, "{# a ?? b #}{{ inputs.name }}") == "Ada"
    assert render(renderer, "{% raw %}{{ a ?? b }}{% endraw %}") == "{{ a ?? b }}"


def test_coalesce_right_side_is_lazy(renderer: TemplateRenderer) -> None:
    # kv('boom') raises; it must not be called when the left side is present.
    assert render(renderer, "{{ inputs.name ?? kv('boom') }}") == "Ada"
    assert "boom" in reason_of(renderer, "{{ inputs.missing ?? kv('boom') }}")


def test_undefined_coalescing_keeps_null(renderer: TemplateRenderer) -> None:
    assert render(renderer, "[{{ inputs.nothing ??? 'x' }}]") == "[]"
    assert render(renderer, "{{ inputs.missing ??? 'x' }}") == "x"


def test_coalesce_needs_two_operands(renderer: TemplateRenderer) -> None:
    assert reason_of(renderer, "{{ ?? 'x' }}") == "syntax error: '??' needs a value on its left"
    assert reason_of(renderer, "{{ inputs.a ?? }}") == (
        "syntax error: '??' needs a value on its right"
    )


# -- undefined -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ inputs.missing }}", "'inputs.missing' is undefined"),
        ("{{ outputs.nope.value }}", "'outputs.nope' is undefined"),
        ("{{ outputs.extract.nope }}", "'outputs.extract.nope' is undefined"),
        ("{{ outputs.extract.rows[5].id }}", "'outputs.extract.rows[5]' is undefined"),
        ("{{ outputs.extract.rows[0].nope }}", "'outputs.extract.rows[0].nope' is undefined"),
        ("{{ outputs['my-task'].size }}", "\"outputs['my-task'].size\" is undefined"),
        ("{{ nowhere.at.all }}", "'nowhere' is undefined"),
        ("{{ inputs.missing | upper }}", "'inputs.missing' is undefined"),
        ("{% for x in inputs.missing %}{% endfor %}", "'inputs.missing' is undefined"),
        ("{% if inputs.missing %}{% endif %}", "'inputs.missing' is undefined"),
        ("{% if inputs.missing == 'a' %}{% endif %}", "'inputs.missing' is undefined"),
        ("{{ inputs.missing + 1 }}", "'inputs.missing' is undefined"),
        ("{{ inputs.missing ~ 'x' }}", "'inputs.missing' is undefined"),
        ("{{ inputs.missing | toJson }}", "'inputs.missing' is undefined"),
    ],
)
def test_undefined_raises_naming_it(renderer: TemplateRenderer, template: str, reason: str) -> None:
    assert reason_of(renderer, template) == reason


def test_undefined_can_be_tested(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{{ outputs.nope.value is defined }}") == "false"
    assert render(renderer, "{{ inputs.name is defined }}") == "true"
    assert render(renderer, "{{ outputs.nope.value | default('d') }}") == "d"


def test_template_error_shape(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError) as info:
        render(renderer, "{{ inputs.missing }}")
    err = info.value
    assert isinstance(err, FlowdeckError)
    assert err.expression == "{{ inputs.missing }}"
    assert str(err) == "cannot render '{{ inputs.missing }}': 'inputs.missing' is undefined"
    assert "Traceback" not in err.reason
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.expression, copy.reason) == (err.expression, err.reason)


def test_long_expression_is_truncated(renderer: TemplateRenderer) -> None:
    template = "x" * 300 + "{{ inputs.missing }}"
    with pytest.raises(TemplateError) as info:
        render(renderer, template)
    assert len(info.value.expression) == 200
    assert info.value.expression.startswith("x" * 199)


@pytest.mark.parametrize(
    ("template", "reason_start"),
    [
        ("{{ inputs.name | nosuchfilter }}", "syntax error: No filter named 'nosuchfilter'"),
        ("{% if %}", "syntax error: Expected an expression"),
        ("{{ inputs.name ", "syntax error: unexpected end of template"),
        ("{{ 1 / inputs.zero }}", "ZeroDivisionError: division by zero"),
        ("{{ 'abc' | number }}", "ValueError: 'abc' is not a number"),
        ("{{ 'x' | date('yyyy') }}", "ValueError: 'x' is not an ISO-8601 date"),
        ("{{ kv('NOPE') }}", "KeyError: \"no key 'NOPE' in the KV store\""),
    ],
)
def test_other_errors_become_template_errors(
    renderer: TemplateRenderer, template: str, reason_start: str
) -> None:
    assert reason_of(renderer, template).startswith(reason_start)


# -- sandbox ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",  # (lipsum is not offered at all)
        "{{ namespace.__init__.__globals__.os }}",
        "{{ '{0.__class__}'.format('') }}",
        "{{ inputs.name.__class__ ?? 'fallback' }}",
        "{{ outputs.extract.update({'value': 'x'}) }}",
        "{{ outputs.extract.rows.append(3) }}",
        "{{ kv.__globals__ }}",
    ],
)
def test_sandbox_blocks_escapes(renderer: TemplateRenderer, template: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(renderer, template)
    assert info.value.reason.startswith("not allowed: ")
    assert CONTEXT["outputs"]["extract"]["value"] == "raw"
    assert len(CONTEXT["outputs"]["extract"]["rows"]) == 2


def test_no_autoescape(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{{ v }}", v="<a & 'b'>") == "<a & 'b'>"


# -- printing values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1, "b": [1, 2], "c": {"d": None}}, '{"a":1,"b":[1,2],"c":{"d":null}}'),
        ([1, "two", True, None, 2.5], '[1,"two",true,null,2.5]'),
        ((1, 2), "[1,2]"),
        ({"ü": "é"}, '{"ü":"é"}'),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (0, "0"),
        (1.5, "1.5"),
        ("text", "text"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2024-01-02T03:04:05.120000Z"),
        (
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05+02:00",
        ),
        ({"when": datetime(2024, 1, 2, tzinfo=UTC)}, '{"when":"2024-01-02T00:00:00Z"}'),
        (date(2024, 1, 2), "2024-01-02"),
    ],
)
def test_values_print_like_pebble(renderer: TemplateRenderer, value: Any, expected: str) -> None:
    assert renderer.render("{{ v }}", {"v": value}) == expected


def test_literals_print_like_pebble(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{{ true }}|{{ none }}|{{ [1, 'a'] }}") == 'true||[1,"a"]'
    assert render(renderer, "{{ outputs.config }}") == (
        '{"retries":3,"enabled":true,"tags":["x","y"],"owner":null}'
    )


def test_now_renders_iso_utc(renderer: TemplateRenderer) -> None:
    before = datetime.now(UTC)
    out = render(renderer, "{{ now() }}")
    parsed = datetime.fromisoformat(out)
    assert out.endswith("Z")
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    assert abs(parsed - before) < timedelta(minutes=1)
    assert render(renderer, "{{ now(format='yyyy') }}") == str(datetime.now(UTC).year)


def test_trailing_newline_is_kept(renderer: TemplateRenderer) -> None:
    assert render(renderer, "echo {{ inputs.name }}\n") == "echo Ada\n"
    assert render(renderer, "{% if true %}\nx\n{% endif %}\n") == "\nx\n\n"


# -- date -------------------------------------------------------------------------------------

START = "2024-03-05T14:07:09.123456Z"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy-MM-dd", "2024-03-05"),
        ("yy/M/d", "24/3/5"),
        ("dd.MM.yyyy HH:mm:ss", "05.03.2024 14:07:09"),
        ("H'h'mm", "14h07"),
        ("hh:mm a", "02:07 PM"),
        ("h:mm a", "2:07 PM"),
        ("HH:mm:ss.SSS", "14:07:09.123"),
        ("ss.SSSSSS", "09.123456"),
        ("EEE, d MMM yyyy", "Tue, 5 Mar 2024"),
        ("EEEE d MMMM", "Tuesday 5 March"),
        ("yyyy-MM-dd'T'HH:mm:ssX", "2024-03-05T14:07:09Z"),
        ("yyyy-MM-dd'T'HH:mm:ssXXX", "2024-03-05T14:07:09Z"),
        ("HHmmZ", "1407+0000"),
        ("'Today is' EEEE", "Today is Tuesday"),
        ("'o''clock' H", "o'clock 14"),
        ("yyyyMMdd''HH", "20240305'14"),
        ("D", "65"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSSSSX", "2024-03-05T14:07:09.123456Z"),
        ("iso", "2024-03-05T14:07:09.123456Z"),
        ("iso_sec", "2024-03-05T14:07:09Z"),
        ("iso_instant", "2024-03-05T14:07:09.123456Z"),
        ("iso_local_date", "2024-03-05"),
        ("iso_local_date_time", "2024-03-05T14:07:09.123456"),
        ("iso_week_date", "2024-W10-2Z"),
        ("sql", "2024-03-05 14:07:09.123456"),
        ("sql_seq", "2024-03-05 14:07:09"),
        ("rfc_1123_date_time", "Tue, 5 Mar 2024 14:07:09 GMT"),
    ],
)
def test_date_patterns(renderer: TemplateRenderer, pattern: str, expected: str) -> None:
    assert renderer.render("{{ d | date(p) }}", {"d": START, "p": pattern}) == expected


def test_date_default_format_is_iso(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{{ execution.startDate | date }}") == "2024-03-05T14:07:09.123456Z"


def test_date_time_zones(renderer: TemplateRenderer) -> None:
    out = renderer.render(
        "{{ d | date('yyyy-MM-dd HH:mm X|XX|XXX|Z|z', timeZone='Europe/Paris') }}", {"d": START}
    )
    assert out == "2024-03-05 15:07 +01|+0100|+01:00|+0100|CET"
    out = renderer.render("{{ d | date('HH:mm XXX', timeZone='America/St_Johns') }}", {"d": START})
    assert out == "10:37 -03:30"
    out = renderer.render("{{ d | date('iso_date_time', timeZone='Asia/Tokyo') }}", {"d": START})
    assert out == "2024-03-05T23:07:09.123456+09:00[Asia/Tokyo]"
    assert renderer.render("{{ d | date('HH:mm', timeZone='+05:30') }}", {"d": START}) == "19:37"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 7, 1, 8, 30, tzinfo=UTC), "2024-07-01 08:30"),
        (datetime(2024, 7, 1, 8, 30), "2024-07-01 08:30"),  # naive: taken as UTC
        (datetime(2024, 7, 1, 10, 30, tzinfo=timezone(timedelta(hours=2))), "2024-07-01 08:30"),
        (date(2024, 7, 1), "2024-07-01 12:00"),  # a plain date means noon, as in Kestra
        (1719822600, "2024-07-01 08:30"),  # epoch seconds
        ("2024-07-01T10:30:00+02:00", "2024-07-01 08:30"),
        ("2024-07-01T08:30:00", "2024-07-01 08:30"),
    ],
)
def test_date_inputs(renderer: TemplateRenderer, value: Any, expected: str) -> None:
    assert renderer.render("{{ d | date('yyyy-MM-dd HH:mm') }}", {"d": value}) == expected


def test_date_existing_format(renderer: TemplateRenderer) -> None:
    out = renderer.render(
        "{{ d | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy HH:mm') }}", {"d": "31/12/2023 23:10"}
    )
    assert out == "2023-12-31"


def test_date_errors(renderer: TemplateRenderer) -> None:
    assert "unsupported date pattern letter 'Q'" in reason_of(
        renderer, "{{ trigger.date | date('Q') }}"
    )
    assert "unterminated quote" in reason_of(renderer, '{{ trigger.date | date("\'oops") }}')
    assert "unknown time zone 'Mars/Base'" in reason_of(
        renderer, "{{ trigger.date | date('yyyy', timeZone='Mars/Base') }}"
    )
    assert render(renderer, "[{{ inputs.nothing | date('yyyy') }}]") == "[]"


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (30, "SECONDS", "2024-01-31T10:00:30Z"),
        (-15, "MINUTES", "2024-01-31T09:45:00Z"),
        (25, "HOURS", "2024-02-01T11:00:00Z"),
        (1, "DAYS", "2024-02-01T10:00:00Z"),
        (-31, "days", "2023-12-31T10:00:00Z"),
        (2, "WEEKS", "2024-02-14T10:00:00Z"),
        (1, "MONTHS", "2024-02-29T10:00:00Z"),
        (1, "YEARS", "2025-01-31T10:00:00Z"),
    ],
)
def test_date_add(renderer: TemplateRenderer, amount: int, unit: str, expected: str) -> None:
    out = renderer.render(
        "{{ d | dateAdd(n, u, format='iso_sec') }}",
        {"d": "2024-01-31T10:00:00Z", "n": amount, "u": unit},
    )
    assert out == expected


def test_date_add_defaults_and_chaining(renderer: TemplateRenderer) -> None:
    assert render(renderer, "{{ trigger.date | dateAdd(-1, 'DAYS') }}") == (
        "2024-01-01T03:04:05.000000Z"
    )
    assert render(renderer, "{{ trigger.date | dateAdd(1, 'HOURS') | date('HH:mm') }}") == "04:04"
    assert "unknown dateAdd unit 'FORTNIGHTS'" in reason_of(
        renderer, "{{ trigger.date | dateAdd(1, 'FORTNIGHTS') }}"
    )


def test_date_add_keeps_wall_clock_across_dst(renderer: TemplateRenderer) -> None:
    # Paris moves to summer time on 2024-03-31: +1 day keeps 12:00, +24 hours does not.
    ctx = {"d": "2024-03-30T11:00:00Z"}
    days = "{{ d | dateAdd(1, 'DAYS', format='yyyy-MM-dd HH:mm XXX', timeZone='Europe/Paris') }}"
    hours = "{{ d | dateAdd(24, 'HOURS', format='yyyy-MM-dd HH:mm XXX', timeZone='Europe/Paris') }}"
    assert renderer.render(days, ctx) == "2024-03-31 12:00 +02:00"
    assert renderer.render(hours, ctx) == "2024-03-31 13:00 +02:00"


# -- other filters and functions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{{ outputs.config | toJson }}",
            '{"retries":3,"enabled":true,"tags":["x","y"],"owner":null}',
        ),
        ("{{ outputs.config.tags | json }}", '["x","y"]'),
        ("{{ 'a\"b' | toJson }}", '"a\\"b"'),
        ('{{ (\'{"a": {"b": [1, 2]}}\' | fromJson).a.b[1] }}', "2"),
        ("{{ fromJson('[1, 2, 3]') | length }}", "3"),
        ("{{ json('{\"k\": true}').k }}", "true"),
        ("{{ '  hello world ' | trim | capitalize }}", "Hello world"),
        ("{{ 'hello mIxEd' | capitalize }}", "Hello mIxEd"),
        ("{{ 'the quick fOX' | title }}", "The Quick FOX"),
        ("{{ 'MiXeD' | upper }}-{{ 'MiXeD' | lower }}", "MIXED-mixed"),
        ("{{ -3 | abs }}", "3"),
        ("{{ outputs.config.tags | length }}/{{ inputs.nothing | length }}", "2/0"),
        ("{{ [1, true, none, 'x'] | join(',') }}", "1,true,,x"),
        ("{{ outputs.config.tags | first }}{{ outputs.config.tags | last }}", "xy"),
        ("{{ 'a-b-c' | replace('-', '+') }}", "a+b+c"),
        ("{{ 'I like %this%' | replace({'%this%': 'tea', 'I': 'We'}) }}", "We like tea"),
        ("{{ 'v1.2.3' | replace({'(\\\\d+)\\\\.(\\\\d+)': '$2.$1'}, regexp=true) }}", "v2.1.3"),
        ("{{ 'a,b,,c,,' | split(',') }}", '["a","b","","c"]'),
        ("{{ 'a1b22c' | split('\\\\d+') }}", '["a","b","c"]'),
        ("{{ 'a,b,c' | split(',', 2) }}", '["a","b,c"]'),
        ("{{ 'file.tar.gz' | substringBefore('.') }}", "file"),
        ("{{ 'file.tar.gz' | substringAfter('.') }}", "tar.gz"),
        ("{{ 'file.tar.gz' | substringBeforeLast('.') }}", "file.tar"),
        ("{{ 'file.tar.gz' | substringAfterLast('.') }}", "gz"),
        ("{{ 'file' | substringBefore('.') }}|{{ 'file' | substringAfter('.') }}", "file|"),
        ("{{ 'report.csv' | startsWith('rep') }}", "true"),
        ("{{ 'report.csv' | endsWith('.json') }}", "false"),
        ("{{ 'Héllo, Wörld! 2024' | slugify }}", "hello-world-2024"),
        ("{{ '42' | number + 1 }}", "43"),
        ("{{ '2.5' | number * 2 }}", "5.0"),
        ("{{ '0x1F' | number }}", "31"),
        ("{{ '7' | number('DOUBLE') }}", "7.0"),
        ("{{ outputs.config | keys }}", '["retries","enabled","tags","owner"]'),
        ("{{ {'a': 1, 'b': 2} | values }}", "[1,2]"),
        ("{{ ['p', 'q'] | keys }}", "[0,1]"),
        ("{{ inputs.empty | default('blank') }}", "blank"),
        ("{{ inputs.nothing | default('null') }}", "null"),
        ("{{ inputs.zero | default(5) }}", "0"),
        ("{{ [] | default('no items') }}", "no items"),
        ("{{ range(1, 3) }}", "[1,2,3]"),
        ("{{ range(10, 0, -5) }}", "[10,5,0]"),
        ("{{ range(3) }}", "[0,1,2]"),
        ("{{ inputs.nothing is null }} {{ '' is empty }} {{ vars is map }}", "true true true"),
    ],
)
def test_filters_and_functions(renderer: TemplateRenderer, template: str, expected: str) -> None:
    assert render(renderer, template) == expected


def test_range_is_bounded(renderer: TemplateRenderer) -> None:
    assert "range too big" in reason_of(renderer, "{{ range(0, 10000000) | length }}")


# -- render_value ----------------------------------------------------------------------------


def test_render_value_walks_nested_structures(renderer: TemplateRenderer) -> None:
    value = {
        "{{ flow.id }}_key": "{{ inputs.name }}",
        "plain": "no expressions here",
        "number": 3,
        "flag": True,
        "nothing": None,
        "list": ["{{ vars.env }}", 1, {"deep": "{{ taskrun.value | upper }}"}],
        "tuple": ("{{ labels.team }}", 2.5),
        7: "{{ flow.revision }}",
    }
    out = renderer.render_value(value, CONTEXT)
    assert out == {
        "hello_key": "Ada",
        "plain": "no expressions here",
        "number": 3,
        "flag": True,
        "nothing": None,
        "list": ["prod", 1, {"deep": "ITEM-B"}],
        "tuple": ("data", 2.5),
        7: "4",
    }
    assert value["{{ flow.id }}_key"] == "{{ inputs.name }}"  # the input is left alone


def test_render_value_scalars_unchanged(renderer: TemplateRenderer) -> None:
    marker = object()
    assert renderer.render_value(marker, CONTEXT) is marker
    assert renderer.render_value(12, CONTEXT) == 12
    assert renderer.render_value(None, CONTEXT) is None
    assert renderer.render_value("{{ 1 + 1 }}", CONTEXT) == "2"


def test_render_value_errors_are_template_errors(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError) as info:
        renderer.render_value({"a": ["{{ outputs.nope.x }}"]}, CONTEXT)
    assert info.value.reason == "'outputs.nope' is undefined"


# -- fast path, cache, has_expression ---------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "plain text", "price: {5}", "{ {not} }", "{# just a comment #}", "what?? }}"]
)
def test_fast_path_returns_the_same_object(text: str) -> None:
    renderer = TemplateRenderer()

    def no_jinja(source: str) -> Any:
        raise AssertionError("the fast path must not compile anything")

    renderer._compile = no_jinja  # type: ignore[method-assign]
    assert renderer.render(text, CONTEXT) is text
    assert renderer.render_value(text, CONTEXT) is text


def test_compiled_templates_are_cached() -> None:
    renderer = TemplateRenderer()
    for name in ("a", "b", "c"):
        assert renderer.render("Hi {{ n }}", {"n": name}) == f"Hi {name}"
    info = renderer._compile.cache_info()  # type: ignore[attr-defined]
    assert (info.misses, info.hits, info.maxsize) == (1, 2, 2048)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ x }}", True),
        ("a {% if x %}b{% endif %}", True),
        ("prefix {{", True),
        ("plain", False),
        ("{ x }", False),
        ("{# comment #}", False),
        ("", False),
    ],
)
def test_has_expression(text: str, expected: bool) -> None:
    assert has_expression(text) is expected


# -- Pebble's ternary and render() -------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.off ? 'yes' : 'no' }}", "no"),
        ("{{ inputs.name == 'Ada' ? 'hi ' ~ inputs.name : 'who?' }}", "hi Ada"),
        ("{{ inputs.zero > 0 ? 'pos' : inputs.zero == 0 ? 'zero' : 'neg' }}", "zero"),
        ("{{ inputs.off ? 'a' : inputs.name | upper }}", "ADA"),
        ("{{ (inputs.off ? 1 : 2) * 10 }}", "20"),
        ("{{ [inputs.off ? 1 : 2, 3] }}", "[2,3]"),
        ("{{ inputs.missing ?? false ? 'set' : 'unset' }}", "unset"),
        ("{{ 'a ? b : c' }}", "a ? b : c"),
        ("{{ outputs.extract.items[0:1] }}", '["a"]'),
        ("{{ {'k': inputs.off ? 1 : 2} | length }}", "1"),
    ],
)
def test_ternary(renderer: TemplateRenderer, template: str, expected: str) -> None:
    assert render(renderer, template) == expected


def test_a_ternary_needs_its_colon(renderer: TemplateRenderer) -> None:
    assert "needs a ':'" in reason_of(renderer, "{{ inputs.off ? 'yes' }}")
    assert "condition" in reason_of(renderer, "{{ ? 'a' : 'b' }}")


def test_render_renders_an_expression_held_in_a_variable(renderer: TemplateRenderer) -> None:
    context = {"vars": {"first": 1, "second": "{{ vars.first }} < 2",
                        "third": "{{ vars.second }}!"}}
    assert render(renderer, "{{ vars.second }}", **context) == "{{ vars.first }} < 2"
    assert render(renderer, "{{ render(vars.second) }}", **context) == "1 < 2"
    assert render(renderer, "{{ render(vars.third) }}", **context) == "1 < 2!"
    assert render(renderer, "{{ render(vars.third, false) }}", **context) == (
        "{{ vars.first }} < 2!")
    assert render(renderer, "{{ render(5) }}") == "5"
    looping = {"vars": {"me": "{{ render(vars.me) }}"}}
    assert reason_of(renderer, "{{ render(vars.me) }}", **looping)  # bounded, then refused
