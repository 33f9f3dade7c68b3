"""Errors of the control-plane loader."""

from __future__ import annotations

from dataclasses import dataclass

from meterline.stream_processors.errors import ProcessorError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: where (1-based line, dotted field) and what."""

    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "line ?"
        return f"{where}: {self.field or '<file>'}: {self.message}"


class ControlPlaneError(ProcessorError):
    """The control-plane file cannot be read, parsed or validated.

    ``problems`` lists every problem found, each naming the line and the field.
    """

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"invalid control-plane file {source}:\n{lines}")
