"""The public API as a type checker sees it: an ordinary user script passes ``mypy --strict`` with no
ignores, and the mistakes typing can catch (a misspelled filter, swapped id lists) are caught."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engagelab_sms_async.sandbox import Sandbox

from .typed.user_script import main, make_client

HERE = Path(__file__).parent / "typed"


def mypy(path: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            str(config or "/dev/null"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.timeout(600)
def test_a_user_script_calling_every_public_method_passes_mypy_strict() -> None:
    checked = mypy(HERE / "user_script.py")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "type: ignore" not in (HERE / "user_script.py").read_text()


@pytest.mark.timeout(600)
def test_mypy_reports_every_misspelled_filter_and_swapped_id_list() -> None:
    source = (HERE / "misuse.py").read_text().splitlines()
    expected = {number for number, line in enumerate(source, 1) if "# E:" in line}
    checked = mypy(HERE / "misuse.py")
    reported = {int(n) for n in re.findall(r"misuse\.py:(\d+): error", checked.stdout)}
    assert reported == expected, checked.stdout


async def test_the_user_script_runs_against_the_sandbox() -> None:
    async with make_client(Sandbox().transport()) as client:
        seen = await main(client)
    assert "to" in seen  # the ValidationError of an empty send named its field


@pytest.mark.timeout(600)
def test_every_python_block_of_the_docs_passes_mypy_strict(tmp_path: Path) -> None:
    # What users copy first (the Quick start's record.status.name included) must type-check as it stands.
    from .test_docs import BLOCKS

    untyped = []
    for number, (kind, code) in enumerate(BLOCKS):
        (tmp_path / f"readme_block_{number:02d}.py").write_text(code)
        if kind == "celery":
            untyped.append(f"readme_block_{number:02d}")
    # Celery ships no types: its import and its task decorator are the only things let through.
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\n[mypy-celery.*]\nignore_missing_imports = True\n"
        + "".join(f"[mypy-{module}]\ndisallow_untyped_decorators = False\n" for module in untyped)
    )
    checked = mypy(tmp_path, config)
    assert checked.returncode == 0, checked.stdout
