"""podmod's queues on Redis: whoever can write to that Redis must not be able to run code as podmod.
The worker runs only podmod's own job functions, with ids for arguments, and unpickles nothing."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

from rq import Callback, Queue
from rq.serializers import JSONSerializer

import worker.jobs
from podmod import intake, queue
from tests.helpers import drain, read_once


class WritesMarker:
    """A pickle that, once unpickled, runs a shell command: what an attacker would store."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo ran > {self.marker}",))


def reported_post(pod) -> None:
    pod.report(pod.person("alice"), "Post", pod.post(pod.person("bob", "remote.example"), "text"))


def cases_stored(state) -> int:
    state.rollback()
    return state.execute("SELECT count(*) AS n FROM podmod.cases").fetchone()["n"]


def run_worker_burst(log: Path) -> str:
    """`podmod worker --burst` as its own process; what it logged."""
    with log.open("wb") as out:
        process = subprocess.run(
            [sys.executable, "-m", "podmod.cli", "worker", "--burst"],
            env=os.environ.copy(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=180,
        )
    said = log.read_text()
    assert process.returncode == 0, said
    return said


def test_the_allowlist_is_every_job_function_in_worker_jobs():
    functions = {
        f"worker.jobs.{name}"
        for name, value in vars(worker.jobs).items()
        if inspect.isfunction(value) and value.__module__ == "worker.jobs" and name[0] != "_"
    }
    assert set(queue.JOB_FUNCTIONS) == functions


def test_a_pickled_job_on_podmods_queue_is_refused_unread_and_podmods_own_job_still_runs(
    config, state, pod, rconn, tmp_path
):
    marker = tmp_path / "marker"
    foreign = Queue(queue.queue_name(config, "ingest"), connection=rconn).enqueue(
        "os.system", f"echo ran > {marker}"
    )
    reported_post(pod)
    assert read_once(config).enqueued  # podmod's own job, after the foreign one

    said = run_worker_burst(tmp_path / "worker.log")

    assert not marker.exists(), said
    assert f"refused job {foreign.id}" in said and "not JSON" in said, said
    assert not rconn.exists(foreign.key), "a refused job is removed, not retried"
    assert cases_stored(state) == 1, said


def test_a_json_job_naming_another_function_is_refused_and_podmods_own_job_still_runs(
    config, state, pod, rconn, tmp_path
):
    marker = tmp_path / "marker"
    foreign = Queue(
        queue.queue_name(config, "ingest"), connection=rconn, serializer=JSONSerializer
    ).enqueue("os.system", f"echo ran > {marker}")
    reported_post(pod)
    assert read_once(config).enqueued

    said = run_worker_burst(tmp_path / "worker.log")

    assert not marker.exists(), said
    assert f"refused job {foreign.id}" in said and "'os.system' is not one of podmod's" in said
    assert not rconn.exists(foreign.key)
    assert cases_stored(state) == 1, said


def test_a_podmod_job_with_other_arguments_or_a_callback_is_refused(config, rconn, caplog):
    json_queue = Queue(
        queue.queue_name(config, "ingest"), connection=rconn, serializer=JSONSerializer
    )
    named = json_queue.enqueue(queue.INGEST_JOB, "1; not an id")
    called_back = json_queue.enqueue(queue.INGEST_JOB, 1, on_failure=Callback("os.system"))

    drain(config)

    assert "refused job" in caplog.text and "its arguments are not one id" in caplog.text
    assert "it names callbacks or webhooks" in caplog.text
    assert not rconn.exists(named.key) and not rconn.exists(called_back.key)


def test_a_job_pickled_by_an_older_podmod_is_refused_and_the_reader_enqueues_its_batch_again(
    config, state, pod, rconn, caplog
):
    """Upgrading podmod with jobs still queued: the durable record is in PostgreSQL, so the
    refused job's batch comes back on the next reader pass as a JSON job and is stored."""
    reported_post(pod)
    [batch] = read_once(config).enqueued
    job_id = intake.INTAKE_BATCHES.job_id(config, batch)
    rconn.delete(f"rq:job:{job_id}", f"rq:queue:{queue.queue_name(config, 'ingest')}")
    Queue(queue.queue_name(config, "ingest"), connection=rconn).enqueue(
        queue.INGEST_JOB, batch, job_id=job_id
    )  # what the previous podmod (RQ's default pickle) left queued

    drain(config)
    assert f"refused job {job_id}" in caplog.text
    assert cases_stored(state) == 0

    time.sleep(config["reader.restart_grace"])
    assert read_once(config).enqueued == [batch]
    drain(config)
    assert cases_stored(state) == 1


def test_the_reader_reads_job_statuses_without_unpickling_what_a_job_record_holds(
    config, state, pod, rconn, tmp_path
):
    """RQ unpickles a job's `meta` and `result` fields when it loads the job; a reader pass loads
    the jobs of undone batches, whose records anyone with access to Redis can rewrite."""
    marker = tmp_path / "marker"
    reported_post(pod)
    [batch] = read_once(config).enqueued
    job_key = f"rq:job:{intake.INTAKE_BATCHES.job_id(config, batch)}"
    payload = pickle.dumps(WritesMarker(marker))
    rconn.hset(job_key, mapping={"meta": payload, "result": payload})

    read_once(config)

    assert not marker.exists()
