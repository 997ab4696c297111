"""The Databricks test server as databricks-sdk sees it over HTTP: runs go through Databricks'
life cycle and run their Python file for real, idempotency tokens give the same run back,
injected 429s are retried by the SDK, and a refused token is the SDK's own error."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient, errors
from databricks.sdk.config import Config
from databricks.sdk.service import jobs, workspace

from tiers.devenv import databricks
from tiers.operator import databricks_client

TOKEN = "dapi-unit"
TASK_FILE = "/Shared/t/task.py"
# It reads the scope's secret as a task's dbutils does (GET /api/2.0/secrets/get), with the
# credentials the workspace gave it, without dbutils' own slow import.
TASK = (
    "import base64, json, os, sys, urllib.request\n"
    "if sys.argv[1] != '0':\n"
    "    sys.exit(int(sys.argv[1]))\n"
    "request = urllib.request.Request(os.environ['DATABRICKS_HOST'] +"
    " '/api/2.0/secrets/get?scope=s&key=k',"
    " headers={'Authorization': 'Bearer ' + os.environ['DATABRICKS_TOKEN']})\n"
    "read = base64.b64decode(json.load(urllib.request.urlopen(request))['value']).decode()\n"
    "print('args', sys.argv[1:], 'env', os.environ['FROM_SCOPE'], 'read', read)\n"
)


@pytest.fixture
def server() -> Iterator[databricks.Server]:
    with databricks.running(tokens={TOKEN}, pending_s=0.2, terminating_s=0.1) as running:
        yield running


@pytest.fixture
def client(server: databricks.Server) -> WorkspaceClient:
    config = Config(host=server.url, token=TOKEN, auth_type="pat", retry_timeout_seconds=20)
    found = WorkspaceClient(config=config)
    found.secrets.create_scope(scope="s")
    found.secrets.put_secret(scope="s", key="k", string_value="from-the-scope")
    found.workspace.import_(
        path=TASK_FILE, content=base64.b64encode(TASK.encode()).decode(),
        format=workspace.ImportFormat.AUTO, overwrite=True,
    )  # fmt: skip
    return found


def task(exit_code: int, **extra: Any) -> jobs.SubmitTask:
    return jobs.SubmitTask.from_dict(
        {
            "task_key": "t",
            "spark_python_task": {
                "python_file": f"/Workspace{TASK_FILE}",
                "parameters": [str(exit_code), "x"],
            },
            "new_cluster": {
                "spark_version": "15.4.x-scala2.12",
                "num_workers": 0,
                "spark_env_vars": {"FROM_SCOPE": "{{secrets/s/k}}"},
            },
            **extra,
        }
    )


def finished(client: WorkspaceClient, run_id: int) -> tuple[jobs.Run, list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.jobs.get_run(run_id)
        assert run.state is not None and run.state.life_cycle_state is not None
        state = run.state.life_cycle_state.value
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "TERMINATED":
            return run, seen
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish: {seen}")


def test_a_submitted_run_runs_its_python_file_through_the_life_cycle(
    client: WorkspaceClient,
) -> None:
    run_id = client.jobs.submit(run_name="ok", tasks=[task(0)]).run_id
    run, seen = finished(client, run_id)
    assert seen == ["PENDING", "RUNNING", "TERMINATING", "TERMINATED"]
    assert run.state is not None and run.state.result_state == jobs.RunResultState.SUCCESS
    assert run.status is not None and run.status.termination_details is not None
    assert run.status.termination_details.code == jobs.TerminationCodeCode.SUCCESS
    assert run.tasks is not None and run.tasks[0].run_id is not None
    logs = client.jobs.get_run_output(run.tasks[0].run_id).logs or ""
    assert "args ['0', 'x'] env from-the-scope read from-the-scope" in logs


def test_a_task_that_exits_with_an_error_fails_its_run(client: WorkspaceClient) -> None:
    run, _ = finished(client, client.jobs.submit(run_name="bad", tasks=[task(3)]).run_id)
    assert run.state is not None and run.state.result_state == jobs.RunResultState.FAILED
    assert run.status is not None and run.status.termination_details is not None
    assert "exited with code 3" in (run.status.termination_details.message or "")


def test_the_same_idempotency_token_gives_the_same_run(
    client: WorkspaceClient, server: databricks.Server
) -> None:
    server.workspace.pending_s = 3600
    first = client.jobs.submit(run_name="a", tasks=[task(0)], idempotency_token="tok-1").run_id
    again = client.jobs.submit(run_name="a", tasks=[task(0)], idempotency_token="tok-1").run_id
    other = client.jobs.submit(run_name="a", tasks=[task(0)], idempotency_token="tok-2").run_id
    assert first == again != other
    assert len(server.workspace.runs) == 2


def test_cancelling_a_pending_run_ends_it_canceled(
    client: WorkspaceClient, server: databricks.Server
) -> None:
    server.workspace.pending_s = 3600
    run_id = client.jobs.submit(run_name="c", tasks=[task(0)]).run_id
    client.jobs.cancel_run(run_id)
    run, _ = finished(client, run_id)
    assert run.state is not None and run.state.result_state == jobs.RunResultState.CANCELED
    assert run.state.user_cancelled_or_timedout


def test_injected_429_and_500_answers_are_retried_by_the_sdk(
    client: WorkspaceClient, server: databricks.Server
) -> None:
    server.workspace.pending_s = 3600
    run_id = client.jobs.submit(run_name="r", tasks=[task(0)]).run_id
    server.workspace.faults.errors += [("/api/2.2/jobs/runs/get", 429)] * 2
    assert client.jobs.get_run(run_id).run_id == run_id
    assert not server.workspace.faults.errors


def test_jobs_run_now_and_runs_list(client: WorkspaceClient, server: databricks.Server) -> None:
    server.workspace.pending_s = 3600
    job_id = client.jobs.create(name="j", tasks=[jobs.Task.from_dict(task(0).as_dict())]).job_id
    assert job_id is not None
    run_id = client.jobs.run_now(job_id=job_id, idempotency_token="now-1").run_id
    assert client.jobs.run_now(job_id=job_id, idempotency_token="now-1").run_id == run_id
    listed = list(client.jobs.list_runs(job_id=job_id, active_only=True))
    assert [run.run_id for run in listed] == [run_id] and listed[0].job_id == job_id


def test_one_time_runs_are_listed_by_type_and_start_a_page_at_a_time(
    client: WorkspaceClient, server: databricks.Server
) -> None:
    server.workspace.pending_s = 3600
    job_id = client.jobs.create(name="j", tasks=[jobs.Task.from_dict(task(0).as_dict())]).job_id
    assert job_id is not None
    client.jobs.run_now(job_id=job_id)
    before = client.jobs.submit(run_name="old", tasks=[task(0)]).run_id
    since_ms = int(time.time() * 1000) + 1
    time.sleep(0.01)
    submitted = [client.jobs.submit(run_name=f"r{i}", tasks=[task(0)]).run_id for i in range(3)]
    listed = client.jobs.list_runs(
        run_type=jobs.RunType.SUBMIT_RUN, start_time_from=since_ms, limit=2
    )
    assert [run.run_id for run in listed] == submitted[::-1]  # newest first, over two pages
    pages = [path for _, path, _ in server.workspace.requests if path.endswith("/runs/list")]
    assert len(pages) == 2 and before not in submitted


def test_the_operator_finds_a_run_by_its_name_among_newer_ones(
    server: databricks.Server,
) -> None:
    server.workspace.pending_s = 3600
    space = databricks_client.Workspace(server.url, TOKEN, guard=None)
    wanted = asyncio.run(
        space.submit(
            {
                "run_name": "ns/job run attempt 0",
                "tasks": [task(0).as_dict()],
                "idempotency_token": "t",
            }
        )
    )
    for i in range(30):
        asyncio.run(
            space.submit(
                {
                    "run_name": f"ns/other{i} run attempt 0",
                    "tasks": [task(0).as_dict()],
                    "idempotency_token": f"o{i}",
                }
            )
        )
    assert asyncio.run(space.find_run("ns/job run attempt 0", submitted_from_ms=0)) == wanted
    assert asyncio.run(space.find_run("ns/job run attempt 1", submitted_from_ms=0)) is None
    later_ms = int(time.time() * 1000) + 1000
    assert asyncio.run(space.find_run("ns/job run attempt 0", submitted_from_ms=later_ms)) is None


def test_an_expired_token_is_the_sdks_unauthenticated_error(
    client: WorkspaceClient, server: databricks.Server
) -> None:
    server.workspace.refused[TOKEN] = 401
    with pytest.raises(errors.Unauthenticated):
        client.jobs.list_runs(limit=1).__next__()
    server.workspace.refused[TOKEN] = 403
    with pytest.raises(errors.PermissionDenied):
        client.jobs.get_run(1)


def test_latency_is_injected_before_each_answer(
    client: WorkspaceClient, server: databricks.Server
) -> None:
    server.workspace.faults.latency_s = 0.3
    began = time.monotonic()
    with pytest.raises(errors.DatabricksError):
        client.jobs.get_run(999)
    assert time.monotonic() - began >= 0.3
