"""`make demo`: the whole system on one machine, from nothing, with progress; Ctrl-C stops it.

Starts the dev environment, installs the CRDs, runs the operator, applies `examples/` into the
`tiers-demo` namespace, waits until the operator has reported on every object and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import urllib.request

from tiers.devenv import cluster, paths, processes, progress

NAMESPACE = "tiers-demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tiers-demo", description=__doc__)
    parser.add_argument("--once", action="store_true", help="print the resources, then stop")
    parser.add_argument("--state-dir", default=None, help="default ~/.local/state/tiers/dev")
    args = parser.parse_args(argv)
    state_dir = pathlib.Path(args.state_dir) if args.state_dir else paths.default_state_dir()

    print(
        "Tiers demo: building and starting the local system (first run builds Kubernetes)",
        file=sys.stderr,
    )
    env = cluster.up(state_dir, with_helm=False)
    kubectl = [str(env.kubectl), f"--kubeconfig={env.kubeconfig}"]
    operator: processes.Started | None = None
    try:
        with progress.step("installing the CRDs"):
            _run([*kubectl, "apply", "-f", str(paths.repo_root() / "crds")])
            _run([*kubectl, "wait", "--for=condition=Established", "crd",
                  "-l", "app.kubernetes.io/part-of=tiers", "--timeout=60s"])  # fmt: skip
        with progress.step("starting the operator"):
            health = processes.free_port()
            operator = processes.start(
                "operator",
                [sys.executable, "-m", "tiers.operator", "--health-port", str(health),
                 "--metrics-port", str(processes.free_port())],
                log_dir=env.log_dir,
                env={**os.environ, **env.env()},
            )  # fmt: skip
            processes.wait_until(
                lambda: _ok(f"http://127.0.0.1:{health}/healthz"),
                what="waiting for the operator",
                timeout_s=60,
                watch=operator,
            )
        with progress.step(f"applying examples/ to namespace {NAMESPACE}"):
            namespace = _run(
                [*kubectl, "create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml"]
            )
            _run([*kubectl, "apply", "-f", "-"], stdin=namespace)
            _run(
                [
                    *kubectl,
                    "apply",
                    "-n",
                    NAMESPACE,
                    "-R",
                    "-f",
                    str(paths.repo_root() / "examples"),
                ]
            )
        with progress.step("waiting for the operator to report on every resource"):
            processes.wait_until(
                lambda: _all_observed(kubectl),
                what="waiting for conditions",
                timeout_s=60,
                watch=operator,
            )
        print()
        print(_run([*kubectl, "get", "tiers", "-n", NAMESPACE, "-o", "wide"]))
        print(_conditions_table(kubectl))
        print(f'Explore:  eval "$(tiers dev env)"; kubectl get tiers -n {NAMESPACE}')
        print(f"Logs:     {env.log_dir}")
        if not args.once:
            print("Running; press Ctrl-C to stop everything.", flush=True)
            _wait_for_interrupt()
    finally:
        with progress.step("stopping the operator and the local system"):
            if operator is not None:
                processes.stop(operator.pid)
            cluster.down(state_dir)
    return 0


def _all_observed(kubectl: list[str]) -> bool:
    items = json.loads(_run([*kubectl, "get", "tiers", "-n", NAMESPACE, "-o", "json"]))["items"]
    return bool(items) and all(
        item.get("status", {}).get("observedGeneration") == item["metadata"]["generation"]
        for item in items
    )


def _conditions_table(kubectl: list[str]) -> str:
    items = json.loads(_run([*kubectl, "get", "tiers", "-n", NAMESPACE, "-o", "json"]))["items"]
    rows = [("RESOURCE", "CONDITION", "STATUS", "REASON", "MESSAGE")]
    for item in items:
        for condition in item.get("status", {}).get("conditions", []):
            rows.append(
                (
                    f"{item['kind']}/{item['metadata']['name']}",
                    condition["type"],
                    condition["status"],
                    condition["reason"],
                    condition.get("message", ""),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _run(command: list[str], *, stdin: str | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed:\n{result.stderr}")
    return result.stdout


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


if __name__ == "__main__":
    sys.exit(main())
