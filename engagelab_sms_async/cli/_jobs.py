"""``engagelab-sms job enqueue|work|status``: one bulk job in Redis, shared by workers on many machines
(``RedisBulkJob``). ``enqueue`` queues a file's numbers once; ``work`` (on every machine) sends chunks until
the job is finished, with a progress bar of the whole job; ``status`` shows its chunks per state and its
totals."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import AsyncClient, converter
from .._environment import ENV_REDIS_URL
from . import _render as render
from ._help import Command, Group
from ._input import InputError, parse_vars
from ._numbers import NumberSource, in_thread, no_numbers, open_numbers, scan
from ._options import BaseUrl, ChunkSize, Json, Key, LabelId, Sender, TemplateId, User, Var, Verbose
from ._report import report_json, report_tables
from ._runner import Connection, run

__all__ = ["jobs"]

jobs = typer.Typer(
    cls=Group,
    name="job",
    no_args_is_help=True,
    help="One bulk job in Redis shared by workers on many machines: enqueue it once, run `job work` on "
    "every machine, follow it with `job status`. Every number is sent once, whichever worker dies.",
)

RedisUrl = Annotated[
    str,
    typer.Option(
        "--redis",
        envvar=ENV_REDIS_URL,
        metavar="URL",
        help="The Redis holding the job (redis://, rediss:// or unix://).",
        show_default=False,
    ),
]
Cluster = Annotated[bool, typer.Option("--cluster", help="--redis is a node of a Redis Cluster.")]
JobId = Annotated[
    str, typer.Option("--job-id", metavar="ID", help="The job; chunk i is sent as ID:i.", show_default=False)
]


@contextlib.asynccontextmanager
async def _job_redis(url: str, cluster: bool) -> AsyncIterator[Any]:
    """A Redis client for ``--redis``; any Redis failure inside becomes one error line (exit code 1)."""
    try:
        from redis import exceptions
        from redis.asyncio import Redis, RedisCluster
    except ImportError:
        raise InputError(
            '`engagelab-sms job` needs redis-py: pip install "engagelab-sms-async[redis]"'
        ) from None
    try:
        connection: Any = RedisCluster.from_url(url) if cluster else Redis.from_url(url)
    except ValueError:
        # The URL itself is never shown: it may hold a password.
        raise InputError("--redis is not a Redis URL (redis://, rediss:// or unix://)") from None
    try:
        yield connection
    except exceptions.RedisError as exc:
        raise InputError(f"Redis: {type(exc).__name__}: {exc}", code=1) from None
    finally:
        await connection.aclose()


@jobs.command("enqueue", cls=Command)
def enqueue(
    redis: RedisUrl,
    job_id: JobId,
    template_id: TemplateId,
    to_file: Annotated[
        str,
        typer.Option(
            "--to-file", metavar="PATH", help="Numbers: one per line, or a CSV.", show_default=False
        ),
    ],
    column: Annotated[
        str | None,
        typer.Option("--column", metavar="NAME", help="CSV column of the numbers.", show_default=False),
    ] = None,
    var: Var = None,
    sender: Sender = None,
    label_id: LabelId = None,
    chunk_size: ChunkSize = 1000,
    cluster: Cluster = False,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """Queue every number of a file as the job's chunks, each number once. Running it again with the same
    file adds nothing; another file is refused. Workers may already be running."""

    async def work() -> int:
        variables = parse_vars(var or ())
        # Read whole first: a missing column, a bad row or no number at all is reported before anything is
        # queued (a pipe, read only once, is looked into for its first number).
        scan(to_file, column)
        source = NumberSource(open_numbers(to_file), column)
        numbers = iter(source)
        first = next(numbers, None)
        if first is None:
            source.close()
            raise InputError(no_numbers(to_file, source.bad_rows))
        from .. import RedisBulkJob

        async with _job_redis(redis, cluster) as connection:
            job = await RedisBulkJob.create(
                connection,
                job_id,
                template_id,
                chunk_size=chunk_size,
                vars=variables,
                sender=sender,
                label_id=label_id,
            )
            try:
                added = await job.enqueue(in_thread(itertools.chain([first], numbers)))
            finally:
                source.close()
            progress = await job.progress()
        if as_json:
            data = {"job_id": job_id, "added": added, "progress": converter.unstructure(progress)}
            render.print_lines([render.to_json(data)])
        else:
            render.console().print(
                f"job {job_id}: {progress.enqueued:,} chunk(s) of {progress.recipients:,} number(s) queued "
                f"({added:,} added now, {progress.duplicates:,} repeat(s) skipped)",
                markup=False,
            )
        return 0

    run(work, verbose=verbose)


@jobs.command("work", cls=Command)
def work(
    redis: RedisUrl,
    job_id: JobId,
    concurrency: Annotated[
        int, typer.Option("--concurrency", metavar="N", min=1, help="Calls in flight in this worker.")
    ] = 8,
    claim_idle: Annotated[
        float,
        typer.Option(
            "--claim-idle",
            metavar="SECONDS",
            min=0.01,
            max=3299,
            help="Take over a dead worker's chunks after they were idle this long.",
        ),
    ] = 120.0,
    cluster: Cluster = False,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """Send the job's chunks until every chunk has an outcome (run it on as many machines as you like),
    with a progress bar of the whole job; then print its report. Exit code 0 when every number got an
    answer, 1 when chunks are unresolved or rejected."""

    async def go(client: AsyncClient) -> int:
        from .. import RedisBulkJob

        async with _job_redis(redis, cluster) as connection:
            job = await RedisBulkJob.open(connection, job_id)
            working = asyncio.ensure_future(job.work(client, concurrency=concurrency, claim_idle=claim_idle))
            try:
                if not as_json:
                    with render.progress(render.console(stderr=True), unit="chunks") as bar:
                        task = bar.add_task(f"job {job_id}", total=None)
                        while not working.done():
                            state = await job.progress()
                            bar.update(task, total=state.enqueued, completed=state.done)
                            await asyncio.wait({working}, timeout=0.5)
                        state = await job.progress()
                        bar.update(task, total=state.enqueued, completed=state.done)
                finished = await working
            finally:
                working.cancel()
            report = await job.report()
        if as_json:
            render.print_lines([render.to_json({"worker_chunks": finished, "report": report_json(report)})])
        else:
            out = render.console()
            out.print(f"this worker recorded {finished:,} chunk(s)", markup=False)
            for table in report_tables(report):
                out.print(table)
        return 0 if report.ok else 1

    run(go, connection=Connection(user, key, base_url), verbose=verbose)


@jobs.command("status", cls=Command)
def status(redis: RedisUrl, job_id: JobId, cluster: Cluster = False, as_json: Json = False) -> None:
    """The job's chunks per state (queued, in progress, done) and its totals, from Redis's counters."""

    async def show() -> int:
        from .. import RedisBulkJob

        async with _job_redis(redis, cluster) as connection:
            job = await RedisBulkJob.open(connection, job_id)
            state = await job.progress()
        if as_json:
            data = {"job_id": job_id, **converter.unstructure(state), "finished": state.finished}
            render.print_lines([render.to_json(data)])
            return 0
        table = Table(
            title=f"job {job_id}" + ("" if state.finished else " (not finished)"), show_header=False
        )
        table.add_column("")
        table.add_column("", justify="right")
        for name, value in (
            ("chunks queued", state.queued),
            ("chunks in progress", state.in_progress),
            ("chunks done", state.done),
            ("input sealed", "yes" if state.sealed else "no (still being enqueued)"),
            ("recipients", state.recipients),
            ("repeats skipped", state.duplicates),
            ("succeeded", state.succeeded),
            ("failed", state.failed),
            ("unresolved", state.unresolved_recipients),
        ):
            table.add_row(name, f"{value:,}" if isinstance(value, int) else value)
        render.console().print(table)
        return 0

    run(show)
