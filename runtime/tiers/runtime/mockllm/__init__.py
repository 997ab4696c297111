"""mockllm: an OpenAI-compatible HTTP backend for tests, the demo and benchmarks.

It stands in for OpenAI and Azure OpenAI: chat, completions, embeddings and the model list, SSE
streaming with usage, deterministic replies, an optional API key, a latency distribution, and
faults (429/5xx/timeouts) that tests steer at run time through `/_mock/*`.

    with mockllm.running(mockllm.MockConfig(api_key="k")) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="k")

From a shell: `python -m tiers.runtime.mockllm --port 9001 --latency-ms 20`.
"""

from tiers.runtime.mockllm import control
from tiers.runtime.mockllm.app import MockApp, build_app
from tiers.runtime.mockllm.config import Faults, Latency, MockConfig
from tiers.runtime.mockllm.server import run, running

__all__ = [
    "Faults",
    "Latency",
    "MockApp",
    "MockConfig",
    "build_app",
    "control",
    "run",
    "running",
]
