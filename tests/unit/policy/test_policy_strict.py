"""Strict policy parsing (reconciler/policy/schema.py, reconciler/policy/safe_yaml.py): a hostile
or mistyped
policy.yaml is refused quickly, in bounded memory, with its line; nothing is coerced or silently
dropped; names are checked against where they end up (ZooKeeper, Kubernetes, PostgreSQL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.policy import safe_yaml
from reconciler.policy.loader import load_policy, parse_policy
from reconciler.policy.problems import PolicyError, PolicyProblem
from reconciler.policy.schema import INSTANCE_NAME_MAX
from reconciler.policy.templates import TemplateError, load_pod_template

REPO = Path(__file__).resolve().parents[3]
CLI = Path(sys.executable).parent / "reconciler"

THING = """\
kinds:
  Thing:
    table: Thing
    instanceName: iota-dac
    template: t.yml
"""


def problems(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(textwrap.dedent(text), "p.yaml")
    return caught.value.problems


def only(text: str) -> PolicyProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def kind(**fields: object) -> str:
    """A policy with one kind `Thing`, its fields replaced or added (YAML flow values)."""
    base = {"table": "Thing", "instanceName": "iota-dac", "template": "t.yml"}
    base.update({k: str(v) for k, v in fields.items()})
    body = "".join(f"    {k}: {v}\n" for k, v in base.items())
    return f"kinds:\n  Thing:\n{body}"


def billion_laughs(size: int = 664) -> str:
    """The classic bomb as a policy: 9 anchors of 9 aliases each, 9**9 = 387,420,489 strings
    once expanded, padded with comments to exactly `size` bytes."""
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    body = "\n".join(["tickSeconds: 30", *levels, THING.replace("table: Thing", "table: *i")])
    head = "# billion laughs: 9 anchors of 9 aliases each expand to 387,420,489 strings\n"
    pad = size - len(head) - len(body) - 2
    text = head + "#" + " " * (pad - 1) + "\n" + body + "\n"
    assert len(text.encode()) == size
    return text


# ------------------------------------------------------------------ hostile YAML


def test_a_664_byte_billion_laughs_is_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    """Measured in a fresh interpreter (peak RSS before and after, capped address space so a
    regression fails instead of taking the machine down)."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    probe = textwrap.dedent(
        f"""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from reconciler.policy.loader import load_policy
        from reconciler.policy.problems import PolicyError

        def peak_kib():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

        before = peak_kib()
        started = time.perf_counter()
        try:
            load_policy({str(bomb)!r})
        except PolicyError as e:
            print(e)
        print(time.perf_counter() - started, peak_kib() - before)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert res.returncode == 0, res.stderr
    error, figures = res.stdout.splitlines()
    seconds, rss_kib = float(figures.split()[0]), int(figures.split()[1])
    print(
        f"\nbillion laughs (664 bytes): refused in {seconds * 1000:.1f} ms, "
        f"peak RSS +{rss_kib} KiB: {error}"
    )
    assert "more than 16 aliases" in error and "line 6" in error
    assert seconds < 0.5
    assert rss_kib < 10 * 1024


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    p = only("tickSeconds: 30\nloop: &x [1, *x]\n" + THING)
    assert p.line == 2 and "recursive" in p.message


def test_up_to_16_aliases_are_allowed_for_shared_blocks() -> None:
    shared = "hb: &hb {enabled: true, timeoutSeconds: 60}\n"
    kinds = "".join(
        f"  K{i}:\n    table: T{i}\n    instanceName: n{i}\n    template: t.yml\n"
        f"    heartbeat: *hb\n"
        for i in range(16)
    )
    text = f"x-shared:\n  {shared}kinds:\n{kinds}"
    with pytest.raises(PolicyError) as caught:  # the extra top-level key, not the aliases
        parse_policy(text)
    assert [p.where for p in caught.value.problems] == ["x-shared"]
    doc = safe_yaml.load(text)
    assert doc.data["kinds"]["K15"]["heartbeat"] == {"enabled": True, "timeoutSeconds": 60}
    p = only(text.replace("  K15:", "  K16:\n    heartbeat: *hb\n  K15:"))
    assert "more than 16 aliases" in p.message


def test_a_merge_key_shares_defaults_and_is_no_duplicate() -> None:
    policy = parse_policy(
        "kinds:\n"
        "  Thing: &base\n    table: Thing\n    instanceName: iota-dac\n    template: t.yml\n"
        "  Rule:\n    <<: *base\n    table: Rule\n    instanceName: iota-rules\n"
    )
    assert policy.kinds["Rule"].template == "t.yml"
    assert policy.kinds["Rule"].table == "Rule"


def test_few_aliases_that_expand_past_the_node_limit_are_refused() -> None:
    leaves = ", ".join(["1"] * 1000)
    text = f"a: &a [{leaves}]\nb: &b [{', '.join(['*a'] * 11)}]\n" + THING
    p = only(text)
    assert p.line == 2 and "10000 values once aliases are expanded" in p.message


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    p = only("tickSeconds: " + "[" * 5000 + "]" * 5000 + "\n" + THING)
    assert p.line == 1 and "nested deeper than 32" in p.message


def test_a_file_over_1_mib_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(THING + "# padding\n" * (110 * 1024))
    started = time.perf_counter()
    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        load_policy(big)
    assert time.perf_counter() - started < 0.5


def test_an_endless_file_is_read_no_further_than_the_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        load_policy("/dev/zero")
    assert time.perf_counter() - started < 1


def test_a_huge_list_is_refused_as_soon_as_it_passes_the_node_limit() -> None:
    text = THING + "    huge: [" + ",".join(["1"] * 200_000) + "]\n"
    started = time.perf_counter()
    p = only(text)
    took = time.perf_counter() - started
    assert "10000 values" in p.message
    assert took < 2, f"{took:.2f} s"


def test_an_error_never_carries_a_huge_value() -> None:
    p = only(kind(table="[" + ", ".join(["x" * 50] * 100) + "]"))
    assert p.where == "kinds.Thing.table"
    assert len(p.message) < 200


def test_two_documents_are_an_error_with_the_line() -> None:
    p = only(THING + "---\n" + THING)
    assert p.line == 6 and "single document" in p.message


# ------------------------------------------------------------------ duplicate keys


def test_a_duplicate_key_is_reported_with_both_lines() -> None:
    p = only(kind(maxInstances=50) + "    maxInstances: 40\n")
    assert p.where == "kinds.Thing.maxInstances"
    assert p.line == 7
    assert "first at line 6, again at line 7" in p.message


def test_duplicate_kinds_and_top_level_keys_are_each_reported() -> None:
    text = "tickSeconds: 30\n" + THING + "  Thing:\n    table: Other\n" + "tickSeconds: 20\n"
    found = {(p.where, p.line) for p in problems(text)}
    assert ("kinds.Thing", 7) in found
    assert ("tickSeconds", 9) in found


def test_a_quoted_and_a_plain_spelling_of_one_key_are_duplicates() -> None:
    p = only(kind() + '    "table": Again\n')
    assert p.where == "kinds.Thing.table" and "first at line 3" in p.message


# ------------------------------------------------------------------ strict types


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("maxInstances", "true", "expected an integer, got the boolean true"),
        ("maxInstances", "yes", "expected an integer, got the boolean true"),
        ("maxInstances", '"30"', "expected an integer, got the string '30': remove the quotes"),
        ("maxInstances", "30.0", "expected an integer, got 30.0: write 30 without a decimal"),
        ("maxInstances", "30.5", "expected an integer, got 30.5"),
        ("initInstances", "null", "expected an integer, got nothing (null)"),
        ("resourcePerInstance", "[1]", "expected an integer, got a list"),
        ("namespace", "no", "expected a string, got the boolean false: quote it"),
        ("table", "2024-01-01", "expected a string, got the date 2024-01-01"),
        ("heartbeat", "{enabled: 'true'}", "expected true or false, got the string 'true'"),
        ("heartbeat", "{timeoutSeconds: '90'}", "expected a number, got the string '90'"),
        ("heartbeat", "{timeoutSeconds: .nan}", "nan is not a finite number"),
        ("heartbeat", "[enabled]", "expected a mapping, got a list"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_naming_the_field(
    field: str, value: str, expected: str
) -> None:
    p = only(kind(**{field: value}))
    assert p.where.startswith(f"kinds.Thing.{field}")
    assert expected in p.message
    assert p.line is not None and p.line >= 3


def test_a_quoted_number_for_tick_seconds_names_the_field() -> None:
    p = only('tickSeconds: "30"\n' + THING)
    assert (p.where, p.line) == ("tickSeconds", 1)
    assert p.message == "expected a number, got the string '30': remove the quotes"


def test_integers_are_still_numbers_and_camel_case_still_reads() -> None:
    policy = parse_policy(
        "tickSeconds: 5\n"
        + kind(maxInstances=40, heartbeat="{enabled: true, timeoutSeconds: 30, graceSeconds: 0}")
    )
    assert policy.tick_seconds == 5.0
    assert policy.kinds["Thing"].max_instances == 40
    assert policy.kinds["Thing"].heartbeat.timeout_seconds == 30.0


def test_out_of_range_keeps_its_message() -> None:
    p = only(kind(maxInstances=0))
    assert (p.where, p.line) == ("kinds.Thing.maxInstances", 6)
    assert p.message == "0 is out of range: allowed 3..100"


def test_the_shipped_policy_is_valid() -> None:
    loaded = load_policy(REPO / "config" / "policy.yaml")
    assert set(loaded.policy.kinds) == {"Thing", "Rule"}


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ('".."', "is not allowed as a ZooKeeper node name"),
        ('"."', "is not allowed as a ZooKeeper node name"),
        ("a/b", "'/' would make the kind a ZooKeeper path"),
        ("_leader", "reserved for the daemon's own znodes"),
        ("_Thing", "reserved"),
        ('""', "must not be empty"),
        ("-Thing", "letters, digits"),
        ("Thing-", "letters, digits"),
        ('"Th ing"', "letters, digits"),
        ("Thíng", "letters, digits"),
        ('"Thing\\u0001"', "letters, digits"),
        ("T" * 64, "64 characters: at most 63"),
        ("1", "expected a string, got 1"),
    ],
)
def test_a_kind_name_that_is_no_znode_or_label_value_is_refused(name: str, expected: str) -> None:
    p = only(THING.replace("  Thing:", f"  {name}:"))
    assert p.line == 2
    assert p.where.startswith("kinds.")
    assert expected in p.message


@pytest.mark.parametrize("name", ["Thing", "Rule", "Thing2", "my-kind", "my_kind.v2", "X"])
def test_mixed_case_kind_names_stay_valid(name: str) -> None:
    assert list(parse_policy(THING.replace("  Thing:", f"  {name}:")).kinds) == [name]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Iota", "is not a DNS-1123 label (a Kubernetes namespace name)"),
        ("iota_1", "is not a DNS-1123 label"),
        ("-iota", "is not a DNS-1123 label"),
        ("n" * 64, "64 characters: at most 63"),
    ],
)
def test_a_namespace_must_be_a_dns_label(value: str, expected: str) -> None:
    p = only(kind(namespace=value))
    assert p.where == "kinds.Thing.namespace" and p.line == 6
    assert expected in p.message


def test_instance_name_leaves_room_for_the_instance_id_in_a_63_character_pod_name() -> None:
    longest = "i" * INSTANCE_NAME_MAX
    assert len(f"{longest}-99") == 63
    assert parse_policy(kind(instanceName=longest)).kinds["Thing"].instance_name == longest
    p = only(kind(instanceName=longest + "x"))
    assert p.where == "kinds.Thing.instanceName" and p.line == 4
    assert "61 characters: at most 60" in p.message and "ids up to 99" in p.message
    p = only(kind(instanceName="Iota-Dac"))
    assert "is not a DNS-1123 label (pods are named <instanceName>-<instanceId>)" in p.message


def test_a_table_name_postgresql_would_truncate_is_refused() -> None:
    assert parse_policy(kind(table="T" * 63)).kinds["Thing"].table == "T" * 63
    p = only(kind(table="T" * 64))
    assert p.where == "kinds.Thing.table" and "longer than 63 bytes" in p.message
    assert "not a table name" in only(kind(table='""')).message


# ------------------------------------------------------------------ validate and templates


def _validate(policy: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`reconciler validate <policy>` as an operator runs it, from a clean directory."""
    return subprocess.run(
        [str(CLI), "validate", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text((REPO / "templates/iota-dac/pod-template.yml").read_text())
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        'tickSeconds: "30"\n'  # 1
        "kinds:\n"  # 2
        "  Thing:\n"  # 3
        "    table: Thing\n"  # 4
        "    instanceName: iota-dac\n"  # 5
        "    template: t.yml\n"  # 6
        "    maxInstances: true\n"  # 7
        "    maxInstances: 30.0\n"  # 8
        "    namespace: Iota\n"  # 9
        "  _leader:\n"  # 10
        "    table: Rule\n"  # 11
        f"    instanceName: {'r' * 61}\n"  # 12
        "    template: t.yml\n"  # 13
        "  ..:\n"  # 14
        "    table: R2\n"  # 15
        "    instanceName: r2\n"  # 16
        "    template: t.yml\n"  # 17
    )
    res = _validate(bad, tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    for expected in (
        f"{bad}:1: tickSeconds: expected a number, got the string '30'",
        f"{bad}:8: kinds.Thing.maxInstances: duplicate key: first at line 7, again at line 8",
        f"{bad}:8: kinds.Thing.maxInstances: expected an integer, got 30.0",
        f"{bad}:9: kinds.Thing.namespace: 'Iota' is not a DNS-1123 label",
        f"{bad}:10: kinds._leader: '_leader': names starting with '_' are reserved",
        f"{bad}:12: kinds._leader.instanceName: 'rrrrrrrrrrrrrrrrrrrr'... is 61 characters",
        f"{bad}:14: kinds...: '..' is not allowed as a ZooKeeper node name",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert len(lines) == 7, lines
    assert [int(line.split(":")[1]) for line in lines] == sorted(
        int(line.split(":")[1]) for line in lines
    )


def test_validate_refuses_the_bomb_with_its_line(tmp_path: Path) -> None:
    bomb = tmp_path / "policy.yaml"
    bomb.write_text(billion_laughs())
    res = _validate(bomb, tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith(f"{bomb}:6: -: more than 16 aliases (*b): refused")


def test_a_pod_template_gets_the_same_limits(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yml"
    bomb.write_text(billion_laughs())
    with pytest.raises(TemplateError, match="line 6: more than 16 aliases"):
        load_pod_template("Thing", "iota", "iota-dac", bomb)
    dup = tmp_path / "dup.yml"
    dup.write_text("kind: Pod\nmetadata: {}\nkind: Pod\n")
    duplicate = re.escape("line 3: duplicate key kind (first at line 1")
    with pytest.raises(TemplateError, match=duplicate):
        load_pod_template("Thing", "iota", "iota-dac", dup)
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"kind: \xff\xfe\n")
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_pod_template("Thing", "iota", "iota-dac", binary)
