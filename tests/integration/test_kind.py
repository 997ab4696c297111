"""What `make kind-up kind-deploy` applies, checked on the local control plane (kind itself needs
Docker, which these machines lack): the host port in kind-config.yaml reaches a Service that
exists and selects the example endpoint's gateway pods, and the mock model server's manifest is
accepted as it is."""

from __future__ import annotations

import pathlib

import yaml
from conftest import Kubectl, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_PORT_SERVICE = ROOT / "examples" / "kind" / "chat-nodeport.yaml"


def test_the_kind_host_port_reaches_the_example_gateways_pods(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    mapped = {
        m["containerPort"] for node in config["nodes"] for m in node.get("extraPortMappings", [])
    }
    service = yaml.safe_load(NODE_PORT_SERVICE.read_text())
    assert mapped == {port["nodePort"] for port in service["spec"]["ports"]}

    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "01-realtime"),
                "-f", str(NODE_PORT_SERVICE))  # fmt: skip

    def ready_addresses() -> int:
        slices = kubectl.get("endpointslices", "-n", namespace, "-l",
                             f"kubernetes.io/service-name={service['metadata']['name']}")  # fmt: skip
        return sum(
            1
            for item in slices["items"]
            for endpoint in item.get("endpoints") or []
            if endpoint.get("conditions", {}).get("ready")
        )

    # The example runs 2 gateway replicas; kwok makes their pods Running and Ready.
    assert wait_for(
        lambda: ready_addresses() >= 2, timeout_s=60, what="the gateway pods behind the NodePort"
    )


def test_the_mock_model_servers_manifest_is_accepted(kubectl: Kubectl, crds: None) -> None:
    result = kubectl.run(
        "apply", "--dry-run=server", "-f", str(ROOT / "examples" / "kind" / "mockllm.yaml")
    )
    assert result.stdout.count("(server dry run)") == 2
