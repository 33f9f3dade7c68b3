"""The SDK as an agent owner installs it (issue 23): README's commands, a fresh venv, no extras.

Builds the wheel from a copy of the repository's sources with the command README.md and
docs/sdk.md show, installs it into a fresh venv with the SDK's minimal dependencies only
(confluent-kafka, pydantic), and runs an app that has its own ``schemas.py``, ``producers.py``
and ``sinks/`` package (the usual FastAPI/pydantic layout) and records an action through
``import meterline``. One wheel and one venv per test session; pip's own cache makes the
install fast after the first run (about 15 s in all on the 2-core machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CARDS = ("producers", "schemas", "sinks", "stream_processors")
WHEEL = "meterline-0.1.0-py3-none-any.whl"
# the install commands exactly as README.md and docs/sdk.md show them (run from the checkout)
BUILD_COMMAND = "python -m pip wheel . --no-deps -w dist"
INSTALL_COMMAND = f"python -m pip install dist/{WHEEL}"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    site_packages: Path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)  # the venv must see only what it installed
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _copy_sources(dest: Path) -> Path:
    """What a fresh clone holds for the build (without build/ leftovers or caches)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("meterline", *CARDS):
        shutil.copytree(REPO / name, dest / name, symlinks=True, ignore=ignore)
    return dest


def _command(line: str, python: Path) -> list[str]:
    assert line.startswith("python ")
    return [str(python), *line.split()[1:]]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    checkout = _copy_sources(root / "meterline")
    _run(_command(BUILD_COMMAND, Path(sys.executable)), cwd=checkout)
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    _run(_command(INSTALL_COMMAND, python), cwd=checkout)
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=root,
    ).stdout.strip()
    return Installed(checkout / "dist" / WHEEL, python, Path(purelib))


def test_readme_and_sdk_doc_show_the_commands_this_test_runs() -> None:
    for doc in ("README.md", "docs/sdk.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        for command in (BUILD_COMMAND, INSTALL_COMMAND):
            assert command in text, f"{doc} does not show {command!r}"


def _source_modules() -> set[str]:
    """The wheel paths of every .py file of the shell and the card folders."""
    paths: set[str] = set()
    for path in (REPO / "meterline").rglob("*.py"):
        rel = path.relative_to(REPO / "meterline")
        if rel.parts[0] not in CARDS and "__pycache__" not in rel.parts:
            paths.add(f"meterline/{rel.as_posix()}")
    for card in CARDS:
        for path in (REPO / card).rglob("*.py"):
            rel = path.relative_to(REPO / card)
            if "__pycache__" not in rel.parts:
                paths.add(f"meterline/{card}/{rel.as_posix()}")
    return paths


@pytest.mark.integration
def test_the_wheel_holds_each_file_once_under_meterline(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert len(names) == len(set(names)), "duplicate entries in the wheel"
    tops = {name.split("/")[0] for name in names}
    assert tops == {"meterline", "meterline-0.1.0.dist-info"}
    assert {n for n in names if n.endswith(".py")} == _source_modules()
    for marker in ("meterline/py.typed", *(f"meterline/{card}/py.typed" for card in CARDS)):
        assert marker in names
    static = REPO / "meterline" / "dashboard" / "static"
    for path in static.rglob("*"):
        if path.is_file():
            assert f"meterline/dashboard/static/{path.relative_to(static).as_posix()}" in names


@pytest.mark.integration
def test_site_packages_holds_no_generic_top_level_name(installed: Installed) -> None:
    present = {p.name for p in installed.site_packages.iterdir()}
    for name in CARDS:
        assert name not in present and f"{name}.py" not in present
    assert "meterline" in present
    info = installed.site_packages / "meterline-0.1.0.dist-info"
    records = (info / "RECORD").read_text(encoding="utf-8").splitlines()
    for line in records:
        path = line.split(",")[0]
        assert path.startswith(("meterline/", "meterline-0.1.0.dist-info/", "../../../bin/")), path


@pytest.mark.integration
def test_only_the_minimal_dependencies_are_installed(installed: Installed) -> None:
    listed = _run([str(installed.python), "-m", "pip", "list", "--format", "json"], cwd=REPO)
    names = {row["name"].lower().replace("_", "-") for row in json.loads(listed.stdout)}
    for extra in ("faust-streaming", "clickhouse-connect", "pyarrow", "chdb-core", "aiohttp"):
        assert extra not in names
    assert {"meterline", "confluent-kafka", "pydantic"} <= names


APP = {
    "schemas.py": """
        from pydantic import BaseModel

        OWNER = "app"


        class Invoice(BaseModel):
            id: str
    """,
    "producers.py": 'OWNER = "app"\n',
    "sinks/__init__.py": 'OWNER = "app"\n',
    "main.py": """
        import os
        import sys

        if sys.argv[1] == "app-first":
            import producers
            import schemas
            import sinks

            import meterline
        else:
            import meterline

            import producers
            import schemas
            import sinks
        from meterline.producers.testing import MemorySink

        here = os.path.dirname(os.path.abspath(__file__))
        for module in (schemas, producers, sinks):
            assert module.OWNER == "app" and module.__file__.startswith(here), module.__file__
            assert sys.modules[module.__name__] is module
        assert "site-packages" in meterline.__file__, meterline.__file__

        assert isinstance(meterline.init(), meterline.UnconfiguredClient)  # no broker: stand-in
        sink = MemorySink()
        meterline.set_client(meterline.MeterlineClient(sink, project="acme"))
        with meterline.action("data_extraction", user_id="user_123", trace_id="t-1"):
            schemas.Invoice(id="inv-1")
        assert meterline.flush(5) == 0
        [record] = sink.records
        got = (record.name, record.project, record.trace_id, record.user_id, record.source)
        assert got == ("data_extraction", "acme", "t-1", "user_123", "valmi"), got
        assert meterline.shutdown(5) == 0
        print("recorded", record.event_id)
    """,
}


@pytest.mark.integration
@pytest.mark.parametrize("order", ["app-first", "sdk-first"])
def test_an_app_with_its_own_schemas_producers_and_sinks_records_an_action(
    installed: Installed, tmp_path: Path, order: str
) -> None:
    for name, text in APP.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    done = _run([str(installed.python), "main.py", order], cwd=tmp_path)
    assert done.stdout.startswith("recorded "), done.stdout
