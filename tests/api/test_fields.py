"""The request-field schema (edgecomplete.fields): every field is there with its doc, and what
`render` writes `parse` reads back, for any value; bad text names the field."""

import argparse
from dataclasses import fields as dataclass_fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecomplete import CompletionRequest, InvalidRequest
from edgecomplete.cli import build_parser
from edgecomplete.fields import DEFAULTS, FIELD, REQUEST_FIELDS, escape, unescape

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
# Items the panel can tell apart: an item that is empty or has surrounding spaces is not kept
# as typed (spaces around | are the separator's).
items = texts.filter(lambda t: t.strip() == t and t != "")
VALUES = {
    "int": st.integers(-10**12, 10**12),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": texts.filter(lambda t: t.strip() == t and t != ""),
    "list": st.lists(items, min_size=1, max_size=5),
    "bias": st.dictionaries(st.integers(0, 300_000), st.floats(allow_nan=False, allow_infinity=False),
                            min_size=1, max_size=5),
    "strengths": st.dictionaries(st.text("0123456789abcdef", min_size=64, max_size=64),
                                 st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=3),
    "bool": st.booleans(),
    "tristate": st.booleans(),
}


def test_every_request_field_but_the_prompt_is_in_the_schema_with_its_doc():
    names = [f.name for f in dataclass_fields(CompletionRequest) if f.name != "prompt"]
    assert [f.name for f in REQUEST_FIELDS] == names
    for field in REQUEST_FIELDS:
        assert field.doc and field.help, f"{field.name} has no entry in CompletionRequest's docstring"
        assert DEFAULTS[field.name] == CompletionRequest.__dataclass_fields__[field.name].default


def test_kinds_follow_the_type_hints():
    assert {name: FIELD[name].kind for name in ("maximum_tokens", "temperature", "penalty_bias",
                                                 "stop_sequences", "logit_bias", "echo",
                                                 "penalty_exceptions_include_stop_sequences")} == {
        "maximum_tokens": "int", "temperature": "float", "penalty_bias": "str", "stop_sequences": "list",
        "logit_bias": "bias", "echo": "bool", "penalty_exceptions_include_stop_sequences": "tristate"}
    assert FIELD["maximum_tokens"].optional and not FIELD["n"].optional


@given(texts)
def test_unescape_reads_back_what_escape_writes(text):
    assert unescape(escape(text)) == text
    assert "\n" not in escape(text) and "\t" not in escape(text)


def test_unescape_understands_the_escapes_a_shell_makes_awkward():
    assert unescape(r"a\nb\tc\\n\q") == "a\nb\tc\\n\\q"


@pytest.mark.parametrize("field", REQUEST_FIELDS, ids=lambda f: f.name)
@given(data=st.data())
def test_parse_reads_back_what_render_writes(field, data):
    value = data.draw(VALUES[field.kind])
    assert field.parse(field.render(value)) == value
    if field.optional:
        assert field.parse(field.render(None)) is None


def test_list_items_may_hold_the_separator_and_json_lists_are_read():
    stop = FIELD["stop_sequences"]
    assert stop.parse(stop.render(["a|b", "\n\n"])) == ["a|b", "\n\n"]
    assert stop.parse('["x", "y | z"]') == ["x", "y | z"]
    assert FIELD["logit_bias"].parse("12:-1.5, 7=2") == {12: -1.5, 7: 2.0}
    assert FIELD["logit_bias"].parse('{"3": 1}') == {3: 1.0}
    assert FIELD["steering_strengths"].parse("ab12:0.5, cd34=-1") == {"ab12": 0.5, "cd34": -1.0}


@pytest.mark.parametrize("name,text,allowed", [
    ("temperature", "warm", "a number"), ("n", "2.5", "an integer"), ("logit_bias", "12", "TOKEN:VALUE"),
    ("stop_sequences", '["a", 1]', "texts separated by |"), ("n", "", "a value is required"),
])
def test_bad_text_names_the_field_and_the_form(name, text, allowed):
    with pytest.raises(InvalidRequest) as error:
        FIELD[name].parse(text)
    assert error.value.field == name and allowed in str(error.value)


def test_the_cli_has_a_flag_per_field_with_the_schemas_help():
    complete = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["complete"]
    flags = {action.dest: action for action in complete._actions}
    for field in REQUEST_FIELDS:
        assert field.name in flags, field.name
        assert flags[field.name].help.startswith(field.help.replace("%", "%%"))
    args = complete.parse_args(["x", "--stop", r"a\nb", "--stop", "c|d", "--logit-bias", "5=1.5",
                                "--no-echo", "--penalty-bias", r"p\tq"])
    assert args.stop_sequences == ["a\nb", "c|d"]  # one item per flag: | is not a separator here
    assert args.logit_bias == [(5, 1.5)] and args.echo is False and args.penalty_bias == "p\tq"
