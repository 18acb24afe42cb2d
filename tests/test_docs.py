"""Every Python block of the README and of the documentation's pages runs, against the sandbox (the docs
are a promise too); the API reference has a page per public name, and the built site has each of them."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_redis import factories

from engagelab_sms_async.sandbox import Sandbox

from . import _reference as reference
from .conftest import trust_fresh_redis

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: Every Markdown page a user reads: the README, then the site's pages.
PAGES = [README, *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<kind>\w+) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)
BLOCKS = [
    (match["kind"] or "run", match["code"]) for page in PAGES for match in BLOCK.finditer(page.read_text())
]

readme_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]


@pytest.fixture
def served_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox over loopback HTTP in a thread of its own, with AsyncClient.from_env() pointed at it."""
    sandbox = Sandbox()
    ready = threading.Event()
    url: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with sandbox.serve() as base_url:
            url.append(base_url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the sandbox did not start"
    monkeypatch.setenv("ENGAGELAB_SMS_USER", "demo")
    monkeypatch.setenv("ENGAGELAB_SMS_KEY", "demo-key")
    monkeypatch.setenv("ENGAGELAB_SMS_BASE_URL", url[0])
    yield sandbox
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def _blocks(kind: str) -> list[str]:
    return [code for block_kind, code in BLOCKS if block_kind == kind]


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("arq", "examples/arq_sms.py"),
        ("arq_sandbox", "examples/arq_sms_sandbox.py"),
        ("celery", "examples/celery_sms.py"),
    ],
)
def test_the_job_queue_recipes_are_the_files_the_worker_tests_run(kind: str, path: str) -> None:
    [code] = _blocks(kind)
    assert code == (README.parent / path).read_text()


def test_the_readme_has_the_blocks_these_tests_expect() -> None:
    assert [kind for kind, _ in BLOCKS].count("run") >= 4
    assert {"fastapi", "aiohttp", "redis", "redis_job", "otel"} <= {kind for kind, _ in BLOCKS}


@pytest.mark.parametrize("code", _blocks("run"), ids=lambda code: code.split("\n\n\n")[1][:40])
def test_a_readme_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "docs", "exec"), {"__name__": "readme"})  # its own asserts must hold
    assert bool(capsys.readouterr().out) == ("print(" in code)  # and what it prints, it printed


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_fastapi_example_sends_through_one_client(served_sandbox: Sandbox) -> None:
    from fastapi.testclient import TestClient

    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(_blocks("fastapi")[0], "docs", "exec"), namespace)
    with TestClient(namespace["app"]) as http:
        first = http.post("/welcome/+12673800456")
        again = http.post("/welcome/+12673800456")
    assert first.status_code == 200
    assert first.json() == again.json()
    assert served_sandbox.deliveries["+12673800456"] == 1


def test_the_aiohttp_example_sends_through_one_client(served_sandbox: Sandbox) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(_blocks("aiohttp")[0], "docs", "exec"), namespace)

    async def call() -> dict[str, Any]:
        async with TestClient(TestServer(namespace["make_app"]())) as http:
            response = await http.post("/welcome/+12673800457")
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    body = asyncio.run(call())
    assert len(body["sms_ids"]) == 1 and body["sms_ids"][0].endswith("$+12673800457")
    assert served_sandbox.deliveries["+12673800457"] == 1


def test_the_redis_example_shares_one_limit(
    readme_redis_proc: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    monkeypatch.setenv("REDIS_URL", f"redis://{readme_redis_proc.host}:{readme_redis_proc.port}/0")
    trust_fresh_redis(readme_redis_proc.host, readme_redis_proc.port)
    exec(compile(_blocks("redis")[0], "docs", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip() == "[0, 0, 0]"
    store = redis.Redis(host=readme_redis_proc.host, port=readme_redis_proc.port)
    assert store.zcard("engagelab:sms:status:{demo}") == 3  # three calls, one shared log, keyed by sms_user


def test_the_shared_job_example_sends_every_number_once(
    readme_redis_proc: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    store = redis.Redis(host=readme_redis_proc.host, port=readme_redis_proc.port)
    store.flushdb()
    monkeypatch.setenv("REDIS_URL", f"redis://{readme_redis_proc.host}:{readme_redis_proc.port}/0")
    exec(compile(_blocks("redis_job")[0], "docs", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.split() == ["20", "20000", "True", "20"]


@pytest.mark.process
def test_the_tracing_example_prints_a_call_span_and_one_span_per_attempt() -> None:
    # In a process of its own: it installs the global tracer provider, which stays for the process's life.
    [code] = _blocks("otel")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert [line.split() for line in ran.stdout.splitlines()] == [
        ["engagelab_sms.send"],
        ["POST", "/v1/send", "1", "503"],
        ["POST", "/v1/send", "2", "200"],
    ]


def test_the_reference_has_a_page_per_public_name() -> None:
    grouped = [name for names in reference.GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(reference.public_names())  # each public name in one group, once
    on_disk = {path.name: path.read_text() for path in reference.REFERENCE.glob("*.md")}
    assert on_disk == reference.pages()  # python -m tests._reference writes them
    assert reference.nav() in (REPO / "mkdocs.yml").read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as .ci/run built it (strict: any warning fails), or built here in strict mode."""
    built = os.environ.get("DOCS_SITE")
    if built:
        return Path(built)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(target)],
        cwd=REPO,
        check=True,
        capture_output=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    return target


@pytest.mark.process
def test_the_built_site_documents_every_public_name_on_its_page(site: Path) -> None:
    for name in reference.public_names():
        page = site / "reference" / reference.page_name(name) / "index.html"
        assert f'id="engagelab_sms_async.{name}"' in page.read_text(), name
    sandbox = (site / "reference/sandbox/index.html").read_text()
    assert 'id="engagelab_sms_async.sandbox.Sandbox"' in sandbox
    assert 'id="engagelab_sms_async.sandbox.TRANSIENT_FAULTS"' in sandbox


@pytest.mark.process
@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("StatusRecord", ("sms_id", "phone", "status", "request_time")),
        ("SendReport", ("recipients", "succeeded", "failed", "unresolved_recipients")),
        ("APIError", ("code", "status_code", "request_id")),
    ],
)
def test_a_reference_page_shows_the_fields_too(site: Path, name: str, fields: tuple[str, ...]) -> None:
    page = (site / "reference" / name / "index.html").read_text()
    for field in fields:
        assert f'id="engagelab_sms_async.{name}.{field}"' in page, field


def test_the_readme_links_only_to_absolute_addresses() -> None:
    # It is the package's long description on PyPI too, where a relative link leads nowhere.
    targets = re.findall(r"\]\(([^)]+)\)|^\[[^\]]+\]: (\S+)$", README.read_text(), re.MULTILINE)
    assert targets
    for inline, defined in targets:
        assert (inline or defined).startswith("https://"), inline or defined


@pytest.mark.process
def test_the_built_site_has_every_guide(site: Path) -> None:
    for page in (REPO / "docs").glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), page.name
