import { describe, expect, it } from "vitest";
import { many, summary } from "../testing/fixtures";
import { apply, columnNames, counts, fromList, health, matches, ordered } from "./summaries";

describe("health", () => {
  it("calls a resource failing when Ready is False for a fault", () => {
    expect(health(summary({ ready: "False", reason: "Unavailable" }))).toBe("failed");
  });
  it("calls a suspended or pending one progressing, not failing", () => {
    expect(health(summary({ ready: "False", reason: "Suspended" }))).toBe("progressing");
    expect(health(summary({ ready: "Unknown", reason: "Creating" }))).toBe("progressing");
  });
  it("calls an endpoint or pipeline waiting for its deleted namesake's children progressing", () => {
    for (const plural of ["realtimeendpoints", "streampipelines"] as const) {
      expect(health(summary({ plural, ready: "Unknown", reason: "PreviousObjectDeleting" }))).toBe("progressing");
    }
  });
  it("is progressing until the operator observed the latest generation", () => {
    expect(health(summary({ generation: 3, observedGeneration: 2 }))).toBe("progressing");
  });
  it("flags stale stats on a ready resource", () => {
    expect(health(summary({ stale: true }))).toBe("stale");
  });
});

describe("the watch's map", () => {
  it("adds, replaces and removes by kind, namespace and name", () => {
    let map = fromList([summary({ name: "a" })]);
    map = apply(map, { type: "upsert", summary: summary({ name: "b" }) });
    map = apply(map, { type: "upsert", summary: summary({ name: "a", ready: "False", reason: "Unavailable" }) });
    expect([...map.keys()]).toEqual(["realtimeendpoints/default/a", "realtimeendpoints/default/b"]);
    expect(map.get("realtimeendpoints/default/a")?.ready).toBe("False");
    map = apply(map, { type: "delete", summary: summary({ name: "a" }) });
    expect(map.size).toBe(1);
  });

  it("keeps the same map and object when an upsert changes nothing", () => {
    const map = fromList([summary({ name: "a" })]);
    expect(apply(map, { type: "upsert", summary: summary({ name: "a" }) })).toBe(map);
  });

  it("drops what a reconnect's initial list no longer has (deleted while the watch was down)", () => {
    let map = fromList([summary({ name: "a" }), summary({ name: "b" })]);
    map = apply(map, { type: "upsert", summary: summary({ name: "b" }) });
    map = apply(map, { type: "synced", keys: ["realtimeendpoints/default/b"] });
    expect([...map.keys()]).toEqual(["realtimeendpoints/default/b"]);
    expect(apply(map, { type: "synced", keys: ["realtimeendpoints/default/b"] })).toBe(map);
  });

  it("puts failures first, then orders by kind and name", () => {
    const items = ordered(fromList(many(20)));
    expect(items.slice(0, 2).map((item) => item.name)).toEqual(["r-017", "r-007"]); // a BatchJob, then a StreamPipeline
    expect(counts(items)).toEqual({ ok: 18, progressing: 0, failed: 2, stale: 0 });
  });

  it("filters one kind", () => {
    expect(ordered(fromList(many(9)), "batchjobs").every((item) => item.plural === "batchjobs")).toBe(true);
  });
});

it("collects printer columns in first-seen order", () => {
  const items = [summary({ columns: { Ready: "True", P95: "9" } }), summary({ name: "b", columns: { Cost: "$1", P95: "3" } })];
  expect(columnNames(items)).toEqual(["Ready", "P95", "Cost"]);
});

it("matches a filter on name, namespace, kind and state", () => {
  const item = summary({ name: "chat", namespace: "team-a" });
  expect(matches(item, "TEAM")).toBe(true);
  expect(matches(item, "realtime")).toBe(true);
  expect(matches(item, "nope")).toBe(false);
});
