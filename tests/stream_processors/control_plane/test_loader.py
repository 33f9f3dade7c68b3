from pathlib import Path

import pytest

from meterline.stream_processors.control_plane import (
    ControlPlaneError,
    load_control_plane,
    load_from_env,
    parse_control_plane,
)
from meterline.stream_processors.errors import ProcessorError
from tests.stream_processors.rules.fixtures import EXAMPLE

BROKEN = """\
version: 3
outcome_rules:
  - id: ok
    name: OK
    steps:
      - action: a
  - id: broken
    name: Broken
    steps:
      - action: b
        where:
          - field: properties.amount
            op: greater
            value: 10
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ControlPlaneError) as caught:
        parse_control_plane(text, source="cp.yaml")
    assert isinstance(caught.value, ProcessorError)
    return [str(p) for p in caught.value.problems]


def test_example_config_loads() -> None:
    config = load_control_plane(EXAMPLE)
    assert config.version == 1
    assert {r.id for r in config.outcome_rules} >= {
        "invoice_processed", "customer_query_resolved", "task_completed",
    }  # fmt: skip
    assert {r.kind for r in config.seat_rules} == {"active", "assigned"}


def test_error_names_line_and_field() -> None:
    [problem] = problems(BROKEN)
    assert problem.startswith("line 13: outcome_rules[1].steps[0].where[0].op: Input should be")


def test_error_message_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ControlPlaneError, match=r"cp\.yaml: line 13: outcome_rules\[1\]"):
        load_control_plane(path)


def test_missing_field_named_at_its_mapping() -> None:
    text = "version: 1\nseat_rules:\n  - id: s\n    kind: active\n    window: 30d\n"
    assert problems(text) == ["line 3: seat_rules[0].name: Field required"]


def test_model_level_error_points_at_the_rule() -> None:
    text = "version: 1\noutcome_rules:\n  - id: u\n    name: U\n    scope: user\n"
    text += "    steps: [{kind: llm_call}]\n"
    assert problems(text) == ["line 3: outcome_rules[0]: scope 'user' needs a 'within' time window"]


def test_every_problem_is_listed_in_line_order() -> None:
    text = "version: 0\nseat_rules:\n  - {id: s, name: S, kind: active, window: 1 month}\n"
    found = problems(text)
    assert [p.split(":")[0] for p in found] == ["line 1", "line 3"]
    assert "version" in found[0] and "seat_rules[0].window" in found[1]


def test_duplicate_keys_rejected() -> None:
    assert problems("version: 1\nversion: 2\n") == ["line 2: version: duplicate key"]


def test_yaml_syntax_error_names_the_line() -> None:
    [problem] = problems("version: 1\noutcome_rules: [\n  - id: x\n")
    assert problem.startswith("line 3: <file>: YAML:")


@pytest.mark.parametrize(
    "text",
    [
        "version: !!python/object/apply:os.system ['touch /tmp/meterline-pwned']\n",
        "version: 1\nx: !!python/name:os.system\n",
    ],
)
def test_python_tags_are_refused_not_run(text: str) -> None:
    [problem] = problems(text)
    assert "could not determine a constructor" in problem
    assert not Path("/tmp/meterline-pwned").exists()


def test_code_and_sql_in_rule_fields_stay_data() -> None:
    text = """\
version: 1
display_names:
  "'; DROP TABLE events; --": "__import__('os').system('id')"
outcome_rules:
  - id: r
    name: "x'); DELETE FROM outcomes; --"
    steps:
      - action: "__import__('os').system('touch /tmp/meterline-pwned')"
        where:
          - {field: properties.q, op: eq, value: "1 OR 1=1"}
"""
    config = parse_control_plane(text)
    assert str(config.outcome_rules[0].steps[0].action).startswith("__import__")
    assert config.display_name("'; DROP TABLE events; --") == "__import__('os').system('id')"
    assert not Path("/tmp/meterline-pwned").exists()


def test_field_path_with_code_rejected_with_line() -> None:
    text = "version: 1\noutcome_rules:\n  - id: r\n    name: R\n    steps:\n"
    text += "      - action: a\n        where: [{field: \"__import__('os')\", op: exists}]\n"
    [problem] = problems(text)
    assert problem.startswith("line 7: outcome_rules[0].steps[0].where[0].field:")


def test_not_a_mapping_and_unreadable(tmp_path: Path) -> None:
    assert problems("- 1\n- 2\n") == ["line 1: <file>: the file must be a YAML mapping"]
    with pytest.raises(ControlPlaneError, match="cannot read"):
        load_control_plane(tmp_path / "missing.yaml")


def test_env_helper(tmp_path: Path) -> None:
    assert load_from_env({}) is None
    path = tmp_path / "cp.yaml"
    path.write_text("version: 7\n")
    config = load_from_env({"METERLINE_CONTROL_PLANE": str(path)})
    assert config is not None and config.version == 7
