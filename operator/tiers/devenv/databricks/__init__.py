"""A Databricks workspace on this machine, for tests and `make demo`: a real HTTP server speaking
the subset of the Jobs 2.2 (and Secrets, Workspace) API that databricks-sdk calls for a
BatchJob, whose runs go through Databricks' life cycle and run their Spark Python task for real
on local Spark (`tasks`). Faults (latency, 429/5xx, refused tokens, a lost cluster) are set on
`server.workspace.faults` and `server.workspace.refused`.

    with databricks.running(tokens={"dapi-test"}) as server:
        WorkspaceClient(host=server.url, token="dapi-test").jobs.submit(...)
"""

from tiers.devenv.databricks.server import Server, running
from tiers.devenv.databricks.workspace import ApiError, Workspace

__all__ = ["ApiError", "Server", "Workspace", "running"]
