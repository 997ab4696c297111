"""The data plane the operator deploys: gateway, stream and batch jobs, the model client, stats.

It never imports `tiers.operator`; the operator renders this package's config models into
ConfigMaps. Each subpackage arrives with the issue that builds it.
"""

__all__: list[str] = []
