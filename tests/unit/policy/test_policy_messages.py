"""What an operator reads when an edit is wrong: an unknown key names the closest valid one, a
YAML syntax error names the file's own line and column (where the fix goes), never PyYAML's
"<unicode string>" (reconciler/policy/problems.py, reconciler/policy/loader.py)."""

from __future__ import annotations

import pytest

from reconciler.policy.loader import parse_policy
from reconciler.policy.problems import PolicyError, PolicyProblem
from tests.unit.policy.test_policy_strict import THING, problems


def only(text: str) -> PolicyProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("maxInstanses: 4", "maxInstances"),
        ("resourcesPerInstance: 10", "resourcePerInstance"),
        ("maxinstances: 4", "maxInstances"),  # a case slip
        ("namespase: iota", "namespace"),
    ],
)
def test_an_unknown_kind_key_names_the_closest_valid_one(typo: str, meant: str) -> None:
    found = only(THING + f"    {typo}\n")
    key = typo.split(":")[0]
    assert found.where == f"kinds.Thing.{key}"
    assert found.line == 6
    assert found.message == f"unknown key `{key}`: did you mean `{meant}`?"


def test_an_unknown_key_in_a_nested_block_is_matched_against_that_block() -> None:
    text = THING + "    heartbeat:\n      enabled: true\n      timeoutSecond: 60\n"
    found = only(text)
    assert found.where == "kinds.Thing.heartbeat.timeoutSecond"
    assert found.message == "unknown key `timeoutSecond`: did you mean `timeoutSeconds`?"


def test_an_unknown_top_level_key_names_the_closest_one() -> None:
    found = only(THING + "tickSecond: 30\n")
    assert found.message == "unknown key `tickSecond`: did you mean `tickSeconds`?"


def test_a_key_like_no_valid_one_lists_what_is_allowed_there() -> None:
    found = only(THING + "    colour: blue\n")
    assert found.message.startswith("unknown key `colour`; allowed here: ")
    assert "instanceName" in found.message and "maxInstances" in found.message


def test_a_misspelt_required_key_is_reported_both_as_missing_and_as_a_typo() -> None:
    text = THING.replace("    template: t.yml\n", "    templte: t.yml\n")
    messages = {p.where: p.message for p in problems(text)}
    assert messages["kinds.Thing.template"] == "required key `template` is missing"
    assert messages["kinds.Thing.templte"] == "unknown key `templte`: did you mean `template`?"


def test_an_unclosed_quote_names_the_line_and_column_where_it_opened() -> None:
    text = 'kinds:\n  Thing:\n    table: "Thing\n    instanceName: iota-dac\n'
    found = only(text)
    assert (found.line, found.column) == (3, 12)
    assert "<unicode string>" not in found.message
    assert "while scanning a quoted scalar at line 3, column 12" in found.message
    assert str(found).startswith("line 3, column 12: not valid YAML: ")


def test_an_unclosed_bracket_names_the_line_where_it_opened_not_where_it_was_noticed() -> None:
    text = THING + "    initInstances: [1, 2\n    maxInstances: 4\n"
    found = only(text)
    assert (found.line, found.column) == (6, 20)
    assert "noticed at line 7, column 17" in found.message


def test_a_bad_indent_names_the_line_of_the_bad_indent() -> None:
    text = "kinds:\n  Thing:\n    table: Thing\n   instanceName: iota-dac\n"
    found = only(text)
    assert (found.line, found.column) == (4, 4)
    assert "<unicode string>" not in found.message


def test_the_error_of_a_whole_file_says_line_and_column_once() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy('kinds: {a: "b\n', "policy.yaml")
    text = str(caught.value)
    assert text.startswith("policy.yaml: line 1, column 12: not valid YAML: ")
    assert "<unicode string>" not in text
