"""The data plane the operator deploys: gateway, stream and batch jobs, the model client, stats.

It reads bottom-up, as `pyproject.toml`'s import-linter contracts check: stats and pricing; the
providers layer (`providers`: how any caller reaches a model); the model client (`modelcall`)
beside the gateway; the stream and batch jobs on top. It never imports `tiers.operator`; the
operator renders this package's config models into ConfigMaps and reads its stats back.
"""

__all__: list[str] = []
