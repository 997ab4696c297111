/** The stream live view's model: results as they arrive from the pipeline's push gateway, counted
 * per second, with the lag each one reports (from the event's ingestion to its result). */

export interface LiveResult {
  id: string;
  text: string;
  status: string;
  costUsd: string | null;
  /** ms from the event's timestamp to its result's arrival, when the result says when it began */
  lagMs: number | null;
  receivedAt: number;
  raw: Record<string, unknown>;
}

function str(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  return JSON.stringify(value);
}

/** One push-gateway SSE `data` (tiers.runtime.stream.events.result_record: key, input, output,
 * status, cost_usd, ingest_ts, processed_ts in ms) as a result, or null when it is not a record. */
export function parseResult(data: string, receivedAt: number): LiveResult | null {
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  const raw = body as Record<string, unknown>;
  const ingest = raw.ingest_ts;
  // Lag as the pipeline saw it (ingest to result), else as the page sees it (ingest to arrival).
  let lagMs: number | null = null;
  if (typeof ingest === "number") {
    const end = typeof raw.processed_ts === "number" ? raw.processed_ts : receivedAt;
    lagMs = Math.max(0, end - ingest);
  }
  return {
    id: str(raw.key ?? raw.id),
    text: str(raw.output ?? raw.error ?? ""),
    status: str(raw.status ?? "ok"),
    costUsd: raw.cost_usd === undefined || raw.cost_usd === null ? null : str(raw.cost_usd),
    lagMs,
    receivedAt,
    raw,
  };
}

/** Per whole second: how many results arrived and their worst lag. */
export interface Tally {
  second: number;
  count: number;
  maxLagMs: number;
}

export function tally(results: readonly LiveResult[], second: number): Tally {
  let count = 0;
  let maxLagMs = 0;
  for (const result of results) {
    if (Math.floor(result.receivedAt / 1000) !== second) continue;
    count += 1;
    maxLagMs = Math.max(maxLagMs, result.lagMs ?? 0);
  }
  return { second, count, maxLagMs };
}

let counter = 0;

/** Sample events a person can send with one click: short support tickets with an id. */
export function sampleEvents(count: number, now: Date = new Date()): Record<string, unknown>[] {
  const texts = [
    "My order arrived damaged, can I get a refund?",
    "How do I reset my password?",
    "The app crashes when I open settings.",
    "Great service, thank you!",
    "Can I change my delivery address?",
  ];
  return Array.from({ length: count }, (_, index) => {
    counter += 1;
    return {
      id: `sample-${now.getTime()}-${counter}`,
      text: texts[index % texts.length] ?? "",
    };
  });
}
