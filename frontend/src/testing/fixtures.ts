/** Summaries shaped as the contract gives them, for the unit tests and the browser performance check. */
import type { Plural, Summary } from "../api/types";

const KIND: Record<Plural, string> = {
  realtimeendpoints: "RealtimeEndpoint",
  streampipelines: "StreamPipeline",
  batchjobs: "BatchJob",
};

export function summary(overrides: Partial<Summary> = {}): Summary {
  const plural = overrides.plural ?? "realtimeendpoints";
  const name = overrides.name ?? "chat";
  return {
    kind: KIND[plural],
    plural,
    namespace: "default",
    name,
    uid: `uid-${plural}-${name}`,
    generation: 1,
    observedGeneration: 1,
    ready: "True",
    reason: "Ready",
    message: "",
    state: "Ready",
    url: null,
    latency: { p50Ms: 3, p95Ms: 9, p99Ms: 14 },
    throughputPerSecond: 120.5,
    costUsd: "0.001200",
    costWindow: "5m",
    progress: null,
    columns: {},
    window: "5m",
    observedAt: "2026-01-01T00:00:00Z",
    stale: false,
    createdAt: "2026-01-01T00:00:00Z",
    ...overrides,
  };
}

/** `count` resources across the three kinds, every tenth failing. */
export function many(count: number): Summary[] {
  const plurals: Plural[] = ["realtimeendpoints", "streampipelines", "batchjobs"];
  return Array.from({ length: count }, (_, index) =>
    summary({
      plural: plurals[index % 3] ?? "realtimeendpoints",
      name: `r-${String(index).padStart(3, "0")}`,
      ...(index % 10 === 7 ? { ready: "False", reason: "Unavailable", message: "no backend answers" } : {}),
    }),
  );
}
