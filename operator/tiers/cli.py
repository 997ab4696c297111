"""The `tiers` command: `tiers dev up|down|env|status|logs`, `tiers operator`, `tiers console`,
`tiers crds`, `tiers version`."""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tiers", description="Tiers: AI inference in three tiers."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="the local control plane, Redis and Kafka")
    dev.add_argument(
        "--state-dir", type=pathlib.Path, default=None, help="default ~/.local/state/tiers/dev"
    )
    dev_commands = dev.add_subparsers(dest="dev_command", required=True)
    dev_up = dev_commands.add_parser("up", help="build what is missing and start everything")
    dev_up.add_argument("--nodes", type=int, default=3, help="kwok fake nodes (default 3)")
    dev_up.add_argument(
        "--node-cpu", default="1000", help="CPU each fake node offers (default 1000 cores)"
    )
    dev_up.add_argument(
        "--node-pods", type=int, default=4000, help="pods each fake node takes (default 4000)"
    )
    dev_up.add_argument(
        "--volumes", type=int, default=32, help="PersistentVolumes for claims (default 32)"
    )
    dev_commands.add_parser("down", help="stop everything `up` started")
    dev_commands.add_parser("env", help='print shell exports: eval "$(tiers dev env)"')
    dev_commands.add_parser("status", help="what runs, where, and its logs folder")
    dev_logs = dev_commands.add_parser("logs", help="the tail of every component's log")
    dev_logs.add_argument("-n", "--lines", type=int, default=20)
    dev_build = dev_commands.add_parser("build", help="build the binaries only")
    dev_build.add_argument("--no-helm", action="store_true", help="only the control plane")

    from tiers.operator import main as operator_main

    operator_main.add_arguments(
        commands.add_parser("operator", help="run the operator against $KUBECONFIG")
    )

    from tiers.console import server as console_server

    console_server.add_arguments(
        commands.add_parser("console", help="serve the web console on :8088 against $KUBECONFIG")
    )

    crds = commands.add_parser("crds", help="write the CRDs generated from tiers.api")
    crds.add_argument("directory", type=pathlib.Path, nargs="?", default=pathlib.Path("crds"))

    version = commands.add_parser("version", help="what is inside: tiers, Python, Java, Spark")
    version.add_argument("--json", action="store_true", help="print JSON")

    args = parser.parse_args(argv)
    if args.command == "version":
        from tiers import versions

        found = versions.collect()
        print(json.dumps(found, indent=2) if args.json else versions.render(found))
        return 0
    if args.command == "dev":
        return _dev(args)
    if args.command == "operator":
        operator_main.run_from_arguments(args)
        return 0
    if args.command == "console":
        console_server.run_from_arguments(args)
        return 0
    from tiers.api import crdgen

    crdgen.main([str(args.directory)])
    return 0


def _dev(args: argparse.Namespace) -> int:
    from tiers import devenv
    from tiers.devenv import cluster, paths

    state_dir = args.state_dir
    if args.dev_command == "build":
        cluster.build(with_helm=not args.no_helm)
        return 0
    if args.dev_command == "up":
        size = cluster.NodeSize(cpu=args.node_cpu, pods=args.node_pods)
        running = devenv.up(state_dir, nodes=args.nodes, node_size=size, volumes=args.volumes)
        print(f"tiers dev environment is up: {running.server}", file=sys.stderr)
        print('  eval "$(tiers dev env)"; kubectl get nodes', file=sys.stderr)
        return 0
    if args.dev_command == "down":
        stopped = devenv.down(state_dir)
        print("stopped" if stopped else "nothing was running", file=sys.stderr)
        return 0
    found = devenv.DevCluster.load((state_dir or paths.default_state_dir()).resolve())
    if found is None:
        print("no dev environment: run `tiers dev up`", file=sys.stderr)
        return 1
    if args.dev_command == "env":
        for name, value in found.env().items():
            if name != "TIERS_DEV_PATH":
                print(f"export {name}={shlex.quote(value)}")
        print(f'export PATH={shlex.quote(found.env()["TIERS_DEV_PATH"])}:"$PATH"')
        return 0
    if args.dev_command == "logs":
        print(found.log_tails(args.lines))
        return 0
    state = "running" if found.is_running() else "NOT all running"
    print(f"{state}: {found.server}\nlogs: {found.log_dir}\n{found.to_json()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
