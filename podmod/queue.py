"""podmod's job queues on Redis (RQ): connecting, naming queues, enqueueing the job of a unit of
durable work (podmod.durable decides which), and the job and worker classes that run only
podmod's own jobs.

Redis only carries work. Every job is idempotent and its durable record lives in PostgreSQL, so an
emptied or restarted Redis loses nothing: the reader enqueues again whatever is not done. Jobs are
JSON, never pickle: whoever can write to this Redis must not be able to run code as podmod.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from podmod.config import Config
from podmod.errors import ConfigError, ServiceUnavailable
from podmod.redact import masked_url

QUEUE_NAMES = ("ingest", "notify", "scan", "lists")
INGEST_JOB = "worker.jobs.ingest_report_batch"
SCAN_BATCH_JOB = "worker.jobs.scan_content_batch"
SCAN_RUN_JOB = "worker.jobs.scan_content_run"
DELIVER_JOB = "worker.jobs.deliver_outbox"
# all a podmod worker will run
JOB_FUNCTIONS = (INGEST_JOB, SCAN_BATCH_JOB, SCAN_RUN_JOB, DELIVER_JOB)
# Sidekiq (diaspora's job runner) keeps these keys in its database; podmod must not share it.
SIDEKIQ_KEYS = ("queues", "processes", "schedule")
READER_HEARTBEAT_KEY = "podmod:reader:heartbeat"  # set by each reader pass, expires after 60 s
# set by podmod serve for a day when a proxy sends X-Forwarded-Prefix it is told not to believe
UNTRUSTED_PROXY_KEY = "podmod:web:untrusted_proxy_prefix"

log = logging.getLogger(__name__)


def redis_connection(config: Config, *, check_sidekiq: bool = True) -> redis.Redis:
    """A Redis client that answers, or ServiceUnavailable; refuses Sidekiq's own database."""
    try:
        conn = redis.Redis.from_url(config.redis_url, socket_connect_timeout=5, socket_timeout=30)
        conn.ping()
    except redis.RedisError as error:
        raise ServiceUnavailable(
            f"Cannot reach Redis at {masked_url(config.redis_url)} ({error}); check that Redis "
            "is running and redis_url is right."
        ) from None
    if check_sidekiq and conn.exists(*SIDEKIQ_KEYS):
        raise ConfigError(
            "redis_url points at the Redis database diaspora*'s Sidekiq uses (it holds Sidekiq's "
            "keys); give podmod its own database, e.g. redis://127.0.0.1:6379/1."
        )
    return conn


def queue_name(config: Config, name: str) -> str:
    return f"{config['queue_prefix']}-{name}"


def _call_refusal(data: bytes) -> str | None:
    """Why a job's serialized call is not one podmod enqueues, read with a plain JSON parse."""
    try:
        call = json.loads(data)
    except (ValueError, RecursionError):
        return (
            "its call is not JSON (RQ's default pickle, written by someone else or by an older "
            "podmod), so it was not read"
        )
    if not isinstance(call, list) or len(call) != 4:
        return "its call is not [function, instance, args, kwargs]"
    function, instance, args, kwargs = call
    if function not in JOB_FUNCTIONS:
        return f"{str(function)[:100]!r} is not one of podmod's job functions"
    if instance is not None or kwargs != {} or not _one_id(args):
        return "its arguments are not one id"
    return None


def _one_id(args: Any) -> bool:
    return isinstance(args, list) and len(args) == 1 and type(args[0]) is int


class PodmodJob(Job):
    """An RQ job kept as JSON whatever the caller asks. Loading one from Redis reads no pickle and
    imports nothing; `refusal` says why it is not a job podmod enqueued (then the callbacks it
    names are dropped, so that not even RQ's cleanup of abandoned jobs calls them)."""

    refusal: str | None = None

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None):
        super().__init__(id, connection=connection, serializer=JSONSerializer)

    def restore(self, raw_data: Any) -> None:
        try:
            super().restore(raw_data)
        except NoSuchJobError:
            raise
        except Exception as error:  # a record no RQ wrote: refused, not a crash of the worker
            self.refusal = f"its record in Redis is damaged ({error})"
        else:
            self.refusal = _call_refusal(self.data)
            if self.refusal is None and (self.webhooks or self._has_callbacks()):
                self.refusal = "it names callbacks or webhooks, which podmod's jobs never have"
        if self.refusal:
            self._success_callback_name = self._failure_callback_name = None
            self._stopped_callback_name = None
            self.webhooks = []

    def _has_callbacks(self) -> bool:
        return bool(
            self._success_callback_name
            or self._failure_callback_name
            or self._stopped_callback_name
        )


class RefusesForeignJobs:
    """Mixed into an RQ worker class: JSON jobs only, and a job that is not podmod's (see
    PodmodJob.refusal) is logged and removed as it is taken off its queue, never run or retried."""

    job_class = PodmodJob

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, serializer=JSONSerializer, **kwargs)  # type: ignore[call-arg]

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[PodmodJob, Queue] | None:
        while True:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)  # type: ignore[misc]
            if result is None or result[0].refusal is None:
                return result
            job, origin = result
            log.warning(
                "refused job %s from %s: %s; removed without running it (podmod's own jobs come "
                "back from PostgreSQL; anything else means someone else can write to this Redis).",
                job.id,
                origin.name,
                job.refusal,
            )
            job.delete(remove_from_queue=False)


class PodmodWorker(RefusesForeignJobs, Worker):
    """An RQ worker (a work horse forked for each job) that runs only podmod's jobs."""


def get_queue(config: Config, name: str, conn: redis.Redis) -> Queue:
    return Queue(
        queue_name(config, name), connection=conn, job_class=PodmodJob, serializer=JSONSerializer
    )


def all_queues(config: Config, conn: redis.Redis) -> list[Queue]:
    """podmod's queues in the order a worker should serve them (intake first, then the outbox,
    whose rows someone waits for, before scans and list work)."""
    return [get_queue(config, name, conn) for name in QUEUE_NAMES]


def enqueue_durable(
    config: Config,
    conn: redis.Redis,
    queue: str,
    function: str,
    argument: int,
    *,
    job_id: str,
    description: str,
) -> Job:
    """Enqueue the job for one durable unit of work (a batch or run recorded in PostgreSQL; see
    podmod.durable.enqueue), replacing a dead job of that id; every such job is retried the same
    way."""
    return get_queue(config, queue, conn).enqueue(
        function,
        argument,
        job_id=job_id,
        retry=Retry(max=3, interval=[2, 10, 60]),
        job_timeout=config["worker.job_timeout"],
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=description,
    )


LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


OFF_QUEUE_KEY = "podmod:off-queue:{}"  # when a job was first seen "queued" in no queue


def job_statuses(
    conn: redis.Redis, job_ids: list[str], *, grace: float
) -> list[tuple[JobStatus | None, Job | None]]:
    """Status of each job id: None where Redis no longer knows the job, or where for `grace`
    seconds it has said "queued" of a job that is in no queue.

    A worker takes a job off its queue a moment before it marks it started; if the worker or
    Redis dies in between, the job stays "queued" in no queue, and neither RQ (which cleans up
    only started jobs) nor anyone else would ever run it. Such a job is as good as missing.
    """
    out: list[tuple[JobStatus | None, Job | None]] = []
    in_queue: dict[str, set[str]] = {}
    for job in PodmodJob.fetch_many(job_ids, connection=conn):
        status = job.get_status(refresh=False) if job is not None else None
        if job is not None and status == JobStatus.QUEUED:
            if job.origin not in in_queue:
                in_queue[job.origin] = set(Queue(job.origin, connection=conn).get_job_ids())
            if job.id not in in_queue[job.origin]:
                key = OFF_QUEUE_KEY.format(job.id)
                conn.set(key, time.time(), nx=True, ex=int(grace * 10) + 60)
                since = float(conn.get(key) or time.time())
                try:
                    job.refresh()  # a worker may have started it meanwhile
                    status = job.get_status(refresh=False)
                except NoSuchJobError:
                    job, status = None, None
                if status == JobStatus.QUEUED and time.time() - since >= grace:
                    conn.delete(key)
                    status = None
        out.append((status, job))
    return out


WAIT_AT_START_UP = 600.0  # seconds a starting worker waits for its database before it gives up


def run_worker(config: Config, *, burst: bool = False, name: str | None = None) -> None:
    """Run an RQ worker on podmod's queues (what `podmod worker` does), once the database answers
    and podmod's schema is current."""
    # The job functions and all they import, loaded once here: every job runs in a work horse
    # forked from this process, which would otherwise import them again for each job (0.12 s of
    # mail and webhook modules each, a fifth of the intake throughput at 1,000 reports a batch).
    import worker.jobs
    from podmod import store
    from podmod.db import state_connection
    from podmod.durable import through_outages
    from podmod.scan import ScanWorker

    def check_schema() -> None:
        with state_connection(config) as state:
            store.require_current_schema(state)

    # A database that is down or cut at start-up is waited for, as the reader does: a worker that
    # exited here stayed gone wherever nothing restarts it, and the backlog with it.
    through_outages(check_schema, name="worker start-up", give_up_after=WAIT_AT_START_UP)
    rconn = redis_connection(config)
    worker = ScanWorker(  # an rq Worker that keeps the compiled content entries between jobs
        all_queues(config, rconn),
        connection=rconn,
        name=name or f"podmod-{socket.gethostname()}-{os.getpid()}",
    )
    worker.work(burst=burst, with_scheduler=True, logging_level=config["log.level"])
