"""`make demo` (here with --once) brings the system up, with the console, and prints the three
resources and the console's URL."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys


def test_demo_prints_the_three_resources_with_conditions(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tiers.devenv.demo",
            "--once",
            "--state-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=520,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for resource in (
        "realtimeendpoint.tiers.dev/chat",
        "streampipeline.tiers.dev/review-summaries",
        "batchjob.tiers.dev/ticket-triage",
        "batchjob.tiers.dev/ticket-backfill",
    ):
        assert resource in out, out
    rows = {tuple(line.split()[:4]) for line in out.splitlines() if len(line.split()) >= 4}
    assert ("RealtimeEndpoint/chat", "Ready", "True", "Ready") in rows, out
    assert ("StreamPipeline/review-summaries", "Ready", "True", "Ready") in rows, out
    assert ("BatchJob/ticket-triage", "Succeeded", "Unknown", "Suspended") in rows, out
    pushed = out.split("Summaries pushed to the browser channel (SSE):")[1].splitlines()[1:4]
    assert all(line.strip().startswith("review-") for line in pushed), out
    realtime_row = next(
        line.split() for line in out.splitlines() if line.startswith("realtimeendpoint")
    )
    p95, cost = realtime_row[3], realtime_row[4]
    assert int(p95) >= 30, "the mock's 30 ms latency shows in P95"
    assert float(cost) > 0, "cost per request shows"
    assert "openai.OpenAI(base_url='http://127.0.0.1:" in out
    assert "client.batches.create(input_file_id=upload.id" in out, "the Batch API snippet"
    # The console was up (the demo waits until it lists the namespace) and its URL is printed.
    assert "Console:  http://127.0.0.1:" in out
    assert "✓ starting the console" in result.stderr
    stream_row = next(
        line.split() for line in out.splitlines() if line.startswith("streampipeline")
    )
    lag, stream_p95, cost_per_event = int(stream_row[2]), int(stream_row[4]), float(stream_row[5])
    assert lag == 0, "every fed event was read"
    assert stream_p95 > 0 and cost_per_event > 0, "latency and cost per event come from the job"
    batch_row = next(
        line.split() for line in out.splitlines() if "batchjob.tiers.dev/ticket-scores" in line
    )
    assert batch_row[1:4] == ["True", "Succeeded", "100"], out  # Succeeded, State, Progress
    assert float(batch_row[4]) > 0, "the batch run's cost shows"
    assert "Batch run Succeeded: 2,000 records scored, 0 failed" in out
    assert "2,000/2,000 done" in result.stderr, "the batch job's progress line"
    # The same tickets on Databricks: the test workspace ran the submitted task on local Spark.
    assert "batchjob.tiers.dev/ticket-scores-databricks" in out
    databricks_line = next(line for line in out.splitlines() if line.startswith("Databricks run"))
    assert "SUCCESS: 2,000 records scored" in databricks_line, out
    assert "run page http://127.0.0.1:" in databricks_line
    # Progress went to stderr, and everything was stopped afterwards.
    assert "✓ starting kube-apiserver" in result.stderr
    assert "✓ stopping the data plane, the operator and the local system" in result.stderr
    assert not (tmp_path / "demo" / "state.json").exists()
