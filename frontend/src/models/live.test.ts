import { expect, it } from "vitest";
import { parseResult, sampleEvents, tally } from "./live";

const record = JSON.stringify({
  key: "e1",
  input: { id: "e1", text: "hi" },
  output: "positive",
  status: "ok",
  cost_usd: "0.000010",
  ingest_ts: 1_000,
  processed_ts: 1_250,
});

it("reads a push gateway result record with its lag from ingestion to result", () => {
  const result = parseResult(record, 2_000);
  expect(result).toMatchObject({ id: "e1", text: "positive", status: "ok", costUsd: "0.000010", lagMs: 250 });
  expect(parseResult("keep-alive", 0)).toBeNull();
});

it("counts one second's results and its worst lag", () => {
  const a = parseResult(record, 5_100);
  const b = parseResult(JSON.stringify({ key: "e2", ingest_ts: 4_000 }), 5_900);
  const c = parseResult(record, 6_100);
  expect(tally([a!, b!, c!], 5)).toEqual({ second: 5, count: 2, maxLagMs: 1_900 });
});

it("makes sample events with distinct ids", () => {
  const events = sampleEvents(10);
  expect(new Set(events.map((event) => event.id)).size).toBe(10);
  expect(events.every((event) => typeof event.text === "string")).toBe(true);
});
