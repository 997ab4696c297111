"""`make demo` (here with --once) brings the system up and prints the three resources."""

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
        timeout=400,
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
    condition_rows = [line.split() for line in out.splitlines() if "Reconciling" in line]
    assert sorted((row[0], row[1], row[2]) for row in condition_rows) == [
        ("BatchJob/ticket-backfill", "Succeeded", "Unknown"),
        ("BatchJob/ticket-triage", "Succeeded", "Unknown"),
        ("RealtimeEndpoint/chat", "Ready", "Unknown"),
        ("StreamPipeline/review-summaries", "Ready", "Unknown"),
    ], out
    # Progress went to stderr, and everything was stopped afterwards.
    assert "✓ starting kube-apiserver" in result.stderr
    assert "✓ stopping the operator and the local system" in result.stderr
    assert not (tmp_path / "demo" / "state.json").exists()
