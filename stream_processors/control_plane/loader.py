"""Load and validate the control-plane YAML file.

Contract: :func:`load_control_plane` either returns a valid, immutable
:class:`~meterline.schemas.control_plane.ControlPlane` or raises :class:`ControlPlaneError` listing
every problem with its line and field. YAML is read with the safe loader (no Python tags,
no code); duplicate keys are errors rather than "last one wins".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from meterline.schemas.control_plane import ControlPlane
from meterline.stream_processors.control_plane.errors import ControlPlaneError, Problem

#: Environment variable naming the control-plane file.
ENV_VAR = "METERLINE_CONTROL_PLANE"
#: Larger files are refused before parsing.
MAX_BYTES = 1 << 20


def control_plane_path(env: dict[str, str] | None = None) -> Path | None:
    """The path in ``METERLINE_CONTROL_PLANE``, or None when unset or empty."""
    value = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    return Path(value) if value else None


def load_from_env(env: dict[str, str] | None = None) -> ControlPlane | None:
    """Load the file named by ``METERLINE_CONTROL_PLANE``; None when the variable is unset."""
    path = control_plane_path(env)
    return None if path is None else load_control_plane(path)


def load_control_plane(path: str | Path) -> ControlPlane:
    """Read, parse and validate one file. Raises :class:`ControlPlaneError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ControlPlaneError(str(path), [Problem(None, "", f"cannot read: {exc}")]) from exc
    return parse_control_plane(data, source=str(path))


def parse_control_plane(text: str | bytes, *, source: str = "<string>") -> ControlPlane:
    """Parse and validate YAML text. Raises :class:`ControlPlaneError`."""
    if len(text) > MAX_BYTES:
        raise ControlPlaneError(source, [Problem(None, "", f"larger than {MAX_BYTES} bytes")])
    node, data = _compose(text, source)
    problems = _duplicate_keys(node, "")
    if problems:
        raise ControlPlaneError(source, problems)
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else None
        raise ControlPlaneError(source, [Problem(line, "", "the file must be a YAML mapping")])
    try:
        return ControlPlane.model_validate(data)
    except ValidationError as exc:
        raise ControlPlaneError(source, _problems(exc, node)) from None


def _compose(text: str | bytes, source: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ControlPlaneError(source, [Problem(line, "", f"YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ControlPlaneError(source, [Problem(None, "", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return node, data


def _duplicate_keys(node: yaml.Node | None, field: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            child = f"{field}.{name}" if field else name
            if name in seen:
                problems.append(Problem(key.start_mark.line + 1, child, "duplicate key"))
            seen.add(name)
            problems += _duplicate_keys(value, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, f"{field}[{i}]")
    return problems


def _problems(exc: ValidationError, root: yaml.Node | None) -> list[Problem]:
    errors = exc.errors(include_url=False)
    locs = [e["loc"] for e in errors]
    found: dict[tuple[int | None, str, str], None] = {}
    for error in errors:
        loc = error["loc"]
        if error["type"] == "too_short" and any(o[: len(loc)] == loc != o for o in locs):
            continue  # pydantic counts only valid items: an item's error is the real one
        line, field = _locate(root, error["loc"], error["type"] == "missing")
        message = error["msg"].removeprefix("Value error, ")
        found[(line, field, message)] = None
    return sorted(
        (Problem(line, field, msg) for line, field, msg in found),
        key=lambda p: (p.line or 0, p.field),
    )


def _locate(
    node: yaml.Node | None, loc: tuple[int | str, ...], missing: bool
) -> tuple[int | None, str]:
    """Follow a pydantic error location through the YAML node tree: (line, dotted field).

    Location parts that are not in the YAML (union member tags) are skipped; a missing
    field is named after the mapping that lacks it.
    """
    field = ""
    for i, part in enumerate(loc):
        child = _child(node, part)
        if child is not None:
            node = child
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else part)
        elif missing and i == len(loc) - 1:
            field += f".{part}" if field else str(part)
    return (node.start_mark.line + 1 if node is not None else None), field


def _child(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if key.value == part:
                return value  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None
