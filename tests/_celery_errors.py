"""A Celery app for a test: a task that raises each of the library's example errors, which a test reads back
with ``result.get()`` through Celery's default JSON results (run with ``celery -A tests._celery_errors
worker``; broker and results in ``REDIS_URL``)."""

from __future__ import annotations

import os

from celery import Celery

from ._error_examples import examples

app = Celery("errors", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])


@app.task
def fail(index: int) -> None:
    raise examples()[index]
