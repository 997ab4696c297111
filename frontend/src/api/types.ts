/** The console API's JSON shapes (frontend/src/api/CONTRACT.md): money as decimal strings,
 * latency in integer ms, times RFC 3339. Only this folder knows the wire; models and views use these. */

export type Plural = "realtimeendpoints" | "streampipelines" | "batchjobs";
export type ConditionStatus = "True" | "False" | "Unknown";

export interface Latency {
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
}

export interface Progress {
  done: number;
  /** null until the run has counted its input */
  total: number | null;
}

export interface Summary {
  kind: string;
  plural: Plural;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  observedGeneration: number | null;
  ready: ConditionStatus;
  reason: string;
  message: string;
  state: string;
  url: string | null;
  latency: Latency | null;
  throughputPerSecond: number | null;
  /** status.cost.totalUSD over costWindow: the stats window (endpoints, pipelines) or the run (BatchJob) */
  costUsd: string | null;
  costWindow: string | null;
  progress: Progress | null;
  columns: Record<string, string>;
  window: string | null;
  observedAt: string | null;
  stale: boolean;
  createdAt: string;
}

export interface KubeEvent {
  type: string;
  reason: string;
  message: string;
  count: number;
  lastTimestamp: string | null;
}

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface Detail {
  summary: Summary;
  object: { spec?: unknown; status?: { conditions?: Condition[] } & Record<string, unknown> } & Record<
    string,
    unknown
  >;
  yaml: string;
  events: KubeEvent[];
}

export type Range = "15m" | "1h" | "6h" | "24h";

export interface SeriesPoint {
  t: string;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  throughputPerSecond: number | null;
  costUsd: string | null;
  errorRatio: number | null;
}

export interface Series {
  points: SeriesPoint[];
}

export interface Estimate {
  records: number;
  estimatedCostUsd: string | null;
  budgetUsd: string | null;
  /** status: the job's own estimate; input: records counted in the upload, no cost yet */
  source?: "status" | "input";
}

export interface Upload {
  bytes: number;
  records: number;
  uri: string;
}

export interface ErrorBody {
  error: { message: string; reason?: string };
}
