"""Fact sheets the pages render in the background: a page shows progress, then a download.

A PDF takes seconds (the first one on a machine, while fonts are prepared, tens of seconds),
too long to hold a request open. Each job runs `hub.publications.service.publish` in its own
thread with its own database session; the file is kept in this process's memory for
`KEEP_SECONDS` and only the person who asked may fetch it. A hub run as several processes
keeps a job in the process that started it (the pages then need sticky sessions).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from uuid import uuid4

from hub.exceptions import HubError
from hub.publications.service import Publication

_log = logging.getLogger(__name__)
KEEP_SECONDS = 30 * 60
MAX_JOBS = 50
JobState = Literal["rendering", "done", "failed"]


@dataclass
class Job:
    job_id: str
    owner: str
    round_id: str
    fmt: str
    language: str
    audience: str
    country: str | None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    state: JobState = "rendering"
    publication: Publication | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def seconds(self) -> int:
        return int((self.finished or time.monotonic()) - self.started)


_jobs: dict[str, Job] = {}
_lock = threading.Lock()


def _prune(now: float) -> None:
    stale = [j for j in _jobs.values() if j.finished and now - j.finished > KEEP_SECONDS]
    for job in stale:
        del _jobs[job.job_id]
    while len(_jobs) >= MAX_JOBS:
        oldest = min(_jobs.values(), key=lambda j: j.started)
        del _jobs[oldest.job_id]


def start(
    *,
    owner: str,
    round_id: str,
    fmt: str,
    language: str,
    audience: str,
    country: str | None,
    work: Callable[[], Publication],
) -> Job:
    """Run `work` in a thread; the job records its file or its error code."""
    job = Job(
        job_id=str(uuid4()),
        owner=owner,
        round_id=round_id,
        fmt=fmt,
        language=language,
        audience=audience,
        country=country,
    )
    with _lock:
        _prune(time.monotonic())
        _jobs[job.job_id] = job

    def run() -> None:
        try:
            publication = work()
        except HubError as exc:
            job.error_code, job.error_message = exc.code, exc.message
            job.state = "failed"
        except Exception:  # shown on the page as a failure; the hub stays up
            _log.exception("publication %s failed", job.job_id)
            job.error_code, job.error_message = "publication_failed", "rendering failed"
            job.state = "failed"
        else:
            job.publication = publication
            job.state = "done"
        finally:
            job.finished = time.monotonic()

    threading.Thread(target=run, name=f"publication-{job.job_id}", daemon=True).start()
    return job


def get(job_id: str, *, owner: str) -> Job | None:
    """The job, if it exists and `owner` started it."""
    with _lock:
        job = _jobs.get(job_id)
    return job if job is not None and job.owner == owner else None
