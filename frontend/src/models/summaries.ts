/** The overview's state: resources by uid, kept current by the watch's upserts and deletes, and the
 * health verdict every card and row shows. Pure: no fetch, no React. */
import type { Plural, Summary } from "../api/types";

export type Health = "ok" | "progressing" | "failed" | "stale";

/** Failed when Ready is False (with a reason other than a normal wait); progressing while Unknown
 * or while the operator has not yet observed the latest generation; stale when the stats are old. */
export function health(summary: Summary): Health {
  if (summary.ready === "False" && !PROGRESSING_REASONS.has(summary.reason)) return "failed";
  if (summary.ready !== "True") return "progressing";
  if (summary.observedGeneration !== null && summary.observedGeneration < summary.generation) {
    return "progressing";
  }
  if (summary.stale) return "stale";
  return "ok";
}

// Reasons the operator gives while a resource is on its way (not a fault to alarm on).
const PROGRESSING_REASONS = new Set([
  "Pending",
  "Starting",
  "Creating",
  "Estimating",
  "Suspended",
  "Scheduled",
  "WaitingForKafka",
  "NoRunFinished",
  "Completed",
  "Succeeded",
]);

export type SummaryMap = ReadonlyMap<string, Summary>;

export function keyOf(summary: Pick<Summary, "plural" | "namespace" | "name">): string {
  return `${summary.plural}/${summary.namespace}/${summary.name}`;
}

export function fromList(items: readonly Summary[]): SummaryMap {
  return new Map(items.map((item) => [keyOf(item), item]));
}

export type WatchEvent =
  | { type: "upsert"; summary: Summary }
  | { type: "delete"; summary: Summary }
  | { type: "synced"; keys: readonly string[] };

/** The map after one event. An upsert equal to what is there keeps the old object (a reconnect
 * re-sends the whole list), so the cards that did not change do not render again. `synced` ends
 * a connection's initial list with every key in it: what else the map holds was deleted while
 * the watch was down (no delete event will come for it), so it goes. */
export function apply(map: SummaryMap, event: WatchEvent): SummaryMap {
  if (event.type === "synced") {
    const listed = new Set(event.keys);
    const gone = [...map.keys()].filter((key) => !listed.has(key));
    if (gone.length === 0) return map;
    const next = new Map(map);
    for (const key of gone) next.delete(key);
    return next;
  }
  const key = keyOf(event.summary);
  const old = map.get(key);
  if (event.type === "upsert" && old && JSON.stringify(old) === JSON.stringify(event.summary)) return map;
  const next = new Map(map);
  if (event.type === "upsert") next.set(key, event.summary);
  else next.delete(key);
  return next;
}

const HEALTH_ORDER: Record<Health, number> = { failed: 0, stale: 1, progressing: 2, ok: 3 };

/** Failures first (so they stand out), then by kind, namespace and name. */
export function ordered(map: SummaryMap, plural?: Plural): Summary[] {
  const items = [...map.values()].filter((item) => plural === undefined || item.plural === plural);
  return items.sort(
    (a, b) =>
      HEALTH_ORDER[health(a)] - HEALTH_ORDER[health(b)] ||
      a.plural.localeCompare(b.plural) ||
      a.namespace.localeCompare(b.namespace) ||
      a.name.localeCompare(b.name),
  );
}

export function counts(items: readonly Summary[]): Record<Health, number> {
  const out: Record<Health, number> = { ok: 0, progressing: 0, failed: 0, stale: 0 };
  for (const item of items) out[health(item)] += 1;
  return out;
}

/** The printer columns seen across `items`, in first-seen order (the backend keeps the CRD's order). */
export function columnNames(items: readonly Summary[]): string[] {
  const names: string[] = [];
  for (const item of items) {
    for (const name of Object.keys(item.columns)) if (!names.includes(name)) names.push(name);
  }
  return names;
}

export function matches(summary: Summary, query: string): boolean {
  const text = query.trim().toLowerCase();
  if (!text) return true;
  return [summary.name, summary.namespace, summary.kind, summary.state, summary.reason].some((field) =>
    field.toLowerCase().includes(text),
  );
}
