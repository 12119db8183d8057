"""Jobs: the job form of every route (DESIGN.md section 3b), shipped verbatim.

- ``api``: :class:`Jobs` (submit, read, cancel, list; the settings; the metrics).
- ``models``: the job API's answers and a job as the stores keep it.
- ``store``: the store interface and the embedded SQLite store.
- ``embedded``: the default engine, worker processes inside the service.
- ``distributed``: ``SERVICE_JOBS_URL=redis://...``: Celery with Redis, and its store.
- ``running``: one job's notebook code, run in whichever worker takes it.
"""

from app.jobs.api import JOB_RESPONSES, Jobs, JobSettings
from app.jobs.models import JobAccepted

__all__ = ["JOB_RESPONSES", "JobAccepted", "JobSettings", "Jobs"]
