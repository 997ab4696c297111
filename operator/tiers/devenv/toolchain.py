"""Builds the control-plane binaries from the Go module proxy, through wrapper modules in `tools/`.

Each wrapper module (`tools/<name>/go.mod` + `go.sum`) pins one upstream module; its version is
read from there, so go.mod is the single place to bump it. Binaries land in
`~/.cache/tiers/bin/<name>-<version>/` and are rebuilt only when that version changes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess

from tiers.devenv import paths, progress


@dataclasses.dataclass(frozen=True)
class GoTool:
    """Binaries built from one wrapper module under `tools/`."""

    name: str
    module: str
    binaries: tuple[tuple[str, str], ...]
    """(output file name, main package import path) pairs."""
    ldflags: tuple[str, ...] = ()
    """-X flags; `{version}`, `{major}` and `{minor}` are filled in from the pinned version."""
    assets: tuple[str, ...] = ()
    """Files copied out of the module's source (e.g. kwok's stage definitions)."""
    tags: tuple[str, ...] = ()
    """Go build tags (e.g. leaving out what the tool needs not do here)."""

    @property
    def module_dir(self) -> pathlib.Path:
        return paths.repo_root() / "tools" / self.name

    @property
    def version(self) -> str:
        return pinned_version(self.module_dir / "go.mod", self.module)

    @property
    def out_dir(self) -> pathlib.Path:
        return paths.cache_dir() / "bin" / f"{self.name}-{self.version}"

    def path(self, binary: str) -> pathlib.Path:
        return self.out_dir / binary


def pinned_version(go_mod: pathlib.Path, module: str) -> str:
    """The version a go.mod requires of `module` (a `replace` to another version wins)."""
    text = go_mod.read_text()
    replaced = re.search(rf"^\s*{re.escape(module)}\s*=>\s*\S+\s+(v\S+)", text, re.MULTILINE)
    if replaced:
        return replaced.group(1)
    required = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if not required:
        raise ValueError(f"{go_mod} does not require {module}")
    return required.group(1)


_K8S_VERSION_FLAGS = (
    *(
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in (
            ("gitVersion", "{version}"),
            ("gitMajor", "{major}"),
            ("gitMinor", "{minor}"),
        )
    ),
    "-X k8s.io/component-base/version.gitTreeState=clean",
)

KUBERNETES = GoTool(
    name="k8s",
    module="k8s.io/kubernetes",
    binaries=tuple(
        (binary, f"k8s.io/kubernetes/cmd/{binary}")
        for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    ),
    ldflags=_K8S_VERSION_FLAGS,
)
ETCD = GoTool(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    binaries=(("etcd", "go.etcd.io/etcd/server/v3"),),
)
KWOK = GoTool(
    name="kwok",
    module="sigs.k8s.io/kwok",
    binaries=(("kwok", "sigs.k8s.io/kwok/cmd/kwok"),),
    assets=tuple(
        f"kustomize/stage/{stage}.yaml"
        for stage in (
            "node/fast/node-initialize",
            "node/heartbeat-with-lease/node-heartbeat-with-lease",
            "pod/fast/pod-ready",
            "pod/fast/pod-complete",
            "pod/fast/pod-delete",
        )
    ),
)
HELM = GoTool(
    name="helm",
    module="helm.sh/helm/v3",
    binaries=(("helm", "helm.sh/helm/v3/cmd/helm"),),
    ldflags=("-X helm.sh/helm/v3/internal/version.version={version}",),
)

GOPHER_LUA = GoTool(
    name="gopher-lua",
    module="github.com/yuin/gopher-lua",
    binaries=(("glua", "github.com/yuin/gopher-lua/cmd/glua"),),
)
"""The Lua 5.1 interpreter Argo CD runs health checks in: the tests run examples/argocd/'s."""

KSTATUS = GoTool(
    name="kstatus",
    module="sigs.k8s.io/cli-utils",
    # The wrapper module's own main package: kstatus.Compute on objects read from stdin.
    binaries=(("kstatus", "tiers.dev/tools/kstatus"),),
)
"""How kstatus (and with it kubectl wait, Flux, Argo CD's checks) reads objects' status: the
tests hold the three kinds' conditions to it."""
PROMTOOL = GoTool(
    name="prometheus",
    module="github.com/prometheus/prometheus",
    binaries=(("promtool", "github.com/prometheus/prometheus/cmd/promtool"),),
    # Without its service-discovery plugins (cloud SDKs): rules and queries are all it checks here.
    tags=("remove_all_sd",),
    ldflags=("-X github.com/prometheus/common/version.Version={version}",),
)
"""Checks and unit-tests the chart's alerts and the dashboards' queries; built by the tests that use
it, not by `tiers dev build`."""

CONTROL_PLANE: tuple[GoTool, ...] = (ETCD, KUBERNETES, KWOK)
ALL: tuple[GoTool, ...] = (*CONTROL_PLANE, HELM, GOPHER_LUA)

_DONE_MARKER = ".complete"


def is_built(tool: GoTool) -> bool:
    return (tool.out_dir / _DONE_MARKER).exists()


def ensure_built(tool: GoTool) -> pathlib.Path:
    """Builds the tool unless this version is already in the cache; returns its folder."""
    if is_built(tool):
        return tool.out_dir
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not on PATH: install Go 1.26 to build the local control plane")
    staging = tool.out_dir.with_name(tool.out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    packages = [package for _, package in tool.binaries]
    names = ", ".join(binary for binary, _ in tool.binaries)
    with progress.step(f"fetching modules for {tool.module} {tool.version}"):
        _run([go, "mod", "download"], cwd=tool.module_dir, env=env)
        listed = _run(
            [go, "list", "-deps", *_tag_flags(tool), *packages], cwd=tool.module_dir, env=env
        )
        total = len(listed.split())
    with progress.step(f"building {names} {tool.version}", total=total) as step:
        for binary, package in tool.binaries:
            _go_build(go, tool, package, staging / binary, env, step)
    for asset in tool.assets:
        source_root = _run(
            [go, "list", "-m", "-f", "{{.Dir}}", tool.module], cwd=tool.module_dir, env=env
        ).strip()
        target = staging / asset
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pathlib.Path(source_root) / asset, target)
    (staging / _DONE_MARKER).write_text(tool.version + "\n")
    shutil.rmtree(tool.out_dir, ignore_errors=True)
    staging.rename(tool.out_dir)
    return tool.out_dir


def module_source(module_dir: pathlib.Path, module: str) -> pathlib.Path:
    """The source folder of the version of `module` that the wrapper module in `module_dir`
    pins, fetched from the Go module proxy into Go's module cache (its go.sum entry verifies it;
    its own dependencies are never fetched). For files read from a module, not built."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(f"go is not on PATH: install Go 1.26 to fetch {module}")
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        cwd=module_dir,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"go mod download {module} failed:\n{(result.stdout + result.stderr)[-4000:]}"
        )
    return pathlib.Path(json.loads(result.stdout)["Dir"])


def module_file(module_dir: pathlib.Path, module: str, file: str) -> pathlib.Path:
    """One file of the pinned version of `module` (e.g. a CRD), copied once into
    `~/.cache/tiers/crds/<wrapper>-<version>/`."""
    version = pinned_version(module_dir / "go.mod", module)
    target = paths.cache_dir() / "crds" / f"{module_dir.name}-{version}" / pathlib.Path(file).name
    if target.exists():
        return target
    source = module_source(module_dir, module) / file
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.rename(target)
    return target


def _tag_flags(tool: GoTool) -> list[str]:
    return ["-tags", ",".join(tool.tags)] if tool.tags else []


def _ldflags(tool: GoTool) -> str:
    major, minor = [*tool.version.lstrip("v").split("."), "0"][:2]
    filled = [flag.format(version=tool.version, major=major, minor=minor) for flag in tool.ldflags]
    return " ".join(["-s", "-w", *filled])


def _go_build(
    go: str,
    tool: GoTool,
    package: str,
    output: pathlib.Path,
    env: dict[str, str],
    step: progress.Step,
) -> None:
    """`go build -v`, counting the packages it compiles as they are printed."""
    command = [
        go,
        "build",
        "-v",
        "-trimpath",
        *_tag_flags(tool),
        "-ldflags",
        _ldflags(tool),
        "-o",
        str(output),
        package,
    ]
    tail: list[str] = []
    with subprocess.Popen(
        command, cwd=tool.module_dir, env=env, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            line = line.rstrip()
            tail = [*tail[-40:], line]
            if line and not line.startswith(("go: ", "#")) and " " not in line:
                step.advance(detail=line[-60:])
    if process.returncode != 0:
        raise RuntimeError(f"go build {package} failed:\n" + "\n".join(tail))


def _run(command: list[str], *, cwd: pathlib.Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{result.stderr[-4000:]}")
    return result.stdout
