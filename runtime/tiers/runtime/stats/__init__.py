"""Windowed stats shared by the three tiers: latency histograms, counts, tokens, cache hits
and cost, recorded in process, summed across replicas in Redis, summarized for status."""

from tiers.runtime.stats.recorder import Recorder
from tiers.runtime.stats.window import Counts, Summary, summarize

__all__ = ["Counts", "Recorder", "Summary", "summarize"]
