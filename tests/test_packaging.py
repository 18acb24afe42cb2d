"""What a user installs: the sdist and the wheel as built from this tree (checked by twine), the LICENSE in
both, no CI scripts in the sdist, the version kept in one place, a core that installs only what it imports,
and a clear word when an extra is missing."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import engagelab_sms_async
from engagelab_sms_async.cli._help import VERSION_LINE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # No isolation: hatchling is a dev dependency, and a build needs no network.
    command = [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out)]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=120)
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_twine_finds_nothing_wrong_with_either(built: dict[str, Path]) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built["sdist"]), str(built["wheel"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_wheel_carries_the_license_and_honest_metadata(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        [metadata_name] = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert metadata["Version"] == engagelab_sms_async.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.10"
    urls = metadata.get_all("Project-URL") or []
    assert {url.split(",")[0] for url in urls} >= {"Documentation", "Repository", "Changelog"}
    core = [req for req in metadata.get_all("Requires-Dist") or [] if "extra ==" not in req]
    assert sorted(req.split(">")[0] for req in core) == ["attrs", "cattrs", "httpx", "tenacity"]
    classifiers = metadata.get_all("Classifier") or []
    tested = {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)}
    assert tested <= set(classifiers)


def test_the_sdist_has_the_sources_tests_and_license_but_no_ci_scripts(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "mkdocs.yml"} <= names
    assert "engagelab_sms_async/__init__.py" in names and "tests/conftest.py" in names
    assert not any(name.startswith(".ci") for name in names)
    # hatchling adds the root .gitignore to every sdist, whatever it is told: how it rebuilds the same
    # file selection from the sdist.


def test_the_version_is_kept_in_one_place() -> None:
    source = (REPO / "engagelab_sms_async" / "_version.py").read_text()
    assert source.strip() == f'__version__ = "{engagelab_sms_async.__version__}"'
    assert f"engagelab-sms-async {engagelab_sms_async.__version__}" == VERSION_LINE
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{engagelab_sms_async.__version__}] - " in changelog


def test_the_core_never_imports_what_it_does_not_depend_on() -> None:
    # aiolimiter fits as a send limiter, but the package itself never needs it.
    probe = "import sys, engagelab_sms_async; print('aiolimiter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("blocked", "statement", "hint"),
    [
        ("starlette", "import engagelab_sms_async.sandbox", 'pip install "engagelab-sms-async[sandbox]"'),
        ("redis", "from engagelab_sms_async import RedisJournal", 'pip install "engagelab-sms-async[redis]"'),
        ("redis", "from engagelab_sms_async import RedisBulkJob", 'pip install "engagelab-sms-async[redis]"'),
    ],
)
def test_a_missing_extra_is_named_with_the_command_that_installs_it(
    blocked: str, statement: str, hint: str
) -> None:
    probe = f"import sys; sys.modules[{blocked!r}] = None\n{statement}"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and hint in last, out.stderr
