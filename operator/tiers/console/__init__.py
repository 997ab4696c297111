"""The console's backend: one web page's API over the three kinds, as the caller may see them.

`python -m tiers.console` (or `tiers console`, `tiers-console`) serves on port 8088: REST and SSE
over RealtimeEndpoints, StreamPipelines and BatchJobs read through the Kubernetes API with the
caller's own bearer token (`identity`), a time series of each resource's latency, throughput and
cost kept from their status (`series`), proxies to an endpoint's gateway and a pipeline's push
gateway, a BatchJob's input upload and results download, and the built frontend (`frontend/dist`).
The API is written down in frontend/src/api/CONTRACT.md.

It reads the API's models (`tiers.api`) and the data plane's contracts only; never an operator
handler (import-linter says so).
"""
