"""Per-project storm guard: a project whose records are mostly invalid is quarantined.

Every record is counted under its project: the validated record's, else the ``project``
field read from the rejected bytes (:func:`project_of`), else one bucket for bytes with no
readable project (:data:`UNREADABLE`). When more than ``max_invalid_ratio`` of a project's
recent records (its last ``window`` to ``2 * window``, at least ``min_records``) are
invalid, the project is quarantined for ``cool_off_s`` seconds: its invalid records are
dead-lettered with their own reason, as always, and its *valid* ones too, with error type
:data:`QUARANTINED` and the original bytes, so they can be replayed
(``meterline replay-dead-letters``). After the cool-off the project's counts start afresh
and its records flow again; a project still broken is quarantined again after
``min_records``.

Contract: never raises and never stops the worker -- one tenant's bad input costs only that
tenant. State is bounded: four integers per project, at most ``max_projects`` projects (the
least recently added one that is not quarantined is forgotten first). Quarantine lives in
the worker's memory: a restarted worker counts again from zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

log = logging.getLogger(__name__)

#: ``error_type`` of a valid record dead-lettered because its project is quarantined.
QUARANTINED = "quarantined"
#: The bucket of rejected records whose project cannot be read (not JSON, no string project).
UNREADABLE = "(unreadable)"

_MAX_PROJECT_CHARS = 256  # meterline.schemas.common.Id
_MAX_PEEK_BYTES = 1_000_000  # schemas.validation.DEFAULT_MAX_RECORD_BYTES: larger is not parsed


class _ProjectOnly(msgspec.Struct):
    project: str = "default"  # the wire default (meterline.schemas.events)


_peek = msgspec.json.Decoder(_ProjectOnly)


def project_of(value: bytes | None) -> str:
    """The project a rejected record names, or :data:`UNREADABLE` (not a JSON object, no
    usable ``project`` string, over the size limit). A JSON object without ``project`` is
    ``default``, as on the wire."""
    if not value or len(value) > _MAX_PEEK_BYTES:
        return UNREADABLE
    try:
        project = _peek.decode(value).project.strip()
    except (msgspec.DecodeError, msgspec.ValidationError):
        return UNREADABLE
    if not project or len(project) > _MAX_PROJECT_CHARS or not project.isprintable():
        return UNREADABLE
    return project


@dataclass
class _Counts:
    valid: int = 0
    invalid: int = 0
    prev_valid: int = 0
    prev_invalid: int = 0
    until: float = 0.0  # monotonic end of quarantine; 0: not quarantined


@dataclass(frozen=True)
class Quarantine:
    """A quarantined project: until when (wall clock) and why."""

    project: str
    until: datetime
    reason: str


class ProjectGuard:
    """Counts valid and invalid records per project and quarantines a project over the
    ratio. ``max_invalid_ratio`` None: no quarantine (invalid records are only
    dead-lettered)."""

    def __init__(
        self,
        max_invalid_ratio: float | None = 0.5,
        cool_off_s: float = 300.0,
        *,
        window: int = 1_000,
        min_records: int = 100,
        max_projects: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_invalid_ratio is not None and not 0 < max_invalid_ratio <= 1:
            raise ValueError("max_invalid_ratio must be in (0, 1], or None for no limit")
        if cool_off_s <= 0:
            raise ValueError("cool_off_s must be positive")
        self.max_invalid_ratio = max_invalid_ratio
        self.cool_off_s = cool_off_s
        self.window = window
        self.min_records = min(min_records, window)
        self.max_projects = max_projects
        self.clock = clock
        self._counts: dict[str, _Counts] = {}
        self._active: dict[str, Quarantine] = {}
        self.quarantines = 0  # times a project went into quarantine (a metric)

    @property
    def quarantined(self) -> dict[str, Quarantine]:
        """Projects in quarantine now. Read-only (safe from a metrics thread): an expired
        quarantine is cleared at the project's next record."""
        now = self.clock()
        return {
            p: q for p, q in list(self._active.items())
            if (c := self._counts.get(p)) is not None and c.until > now
        }  # fmt: skip

    def valid(self, project: str) -> Quarantine | None:
        """Count a valid record of ``project``. Returns its quarantine if the project is
        quarantined (the record is then to be dead-lettered as :data:`QUARANTINED`)."""
        if self.max_invalid_ratio is None:
            return None
        c = self._counts.get(project) or self._new(project)
        if c.until and not self._expired(project, c):
            return self._active[project]
        c.valid += 1
        if c.valid + c.invalid >= self.window:
            self._slide(c)
        return None

    def invalid(self, project: str, reason: str) -> None:
        """Count an invalid record of ``project`` (dead-lettered by the caller with its own
        reason); quarantines the project when it goes over the ratio."""
        if self.max_invalid_ratio is None:
            return
        c = self._counts.get(project) or self._new(project)
        if c.until and not self._expired(project, c):
            return
        c.invalid += 1
        seen = c.valid + c.invalid + c.prev_valid + c.prev_invalid
        bad = c.invalid + c.prev_invalid
        if seen >= self.min_records and bad > self.max_invalid_ratio * seen:
            self._quarantine(project, c, bad, seen, reason)
        elif c.valid + c.invalid >= self.window:
            self._slide(c)

    def _quarantine(self, project: str, c: _Counts, bad: int, seen: int, reason: str) -> None:
        c.until = self.clock() + self.cool_off_s
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=self.cool_off_s)
        why = (
            f"project {project!r} quarantined until {until.isoformat()}: {bad} of its last "
            f"{seen} records were invalid (limit {self.max_invalid_ratio:.0%}); last reason: "
            f"{reason}"
        )
        self._active[project] = Quarantine(project, until, why)
        self.quarantines += 1
        log.error(
            "%s. Its records are dead-lettered (valid ones as %r, replayable with "
            "`meterline replay-dead-letters --project %s`); other projects are not affected.",
            why, QUARANTINED, project,
        )  # fmt: skip

    def _expired(self, project: str, c: _Counts) -> bool:
        if self.clock() < c.until:
            return False
        c.valid = c.invalid = c.prev_valid = c.prev_invalid = 0
        c.until = 0.0
        self._active.pop(project, None)
        log.warning("project %r leaves quarantine: its records are processed again", project)
        return True

    @staticmethod
    def _slide(c: _Counts) -> None:
        c.prev_valid, c.prev_invalid = c.valid, c.invalid
        c.valid = c.invalid = 0

    def _new(self, project: str) -> _Counts:
        if len(self._counts) >= self.max_projects:
            for name, old in self._counts.items():
                if not old.until:
                    del self._counts[name]
                    break
        c = self._counts[project] = _Counts()
        return c
