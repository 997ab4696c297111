import { expect, it } from "vitest";
import { emptyWindow, push, toChartData, xRangeOf } from "./series";

it("turns points into time-ordered chart columns with gaps as null", () => {
  const data = toChartData([
    { t: "2026-01-01T00:01:00Z", p50Ms: 4, p95Ms: 9, p99Ms: 12, throughputPerSecond: 10, costUsd: "0.5", errorRatio: 0 },
    { t: "2026-01-01T00:00:00Z", p50Ms: null, p95Ms: null, p99Ms: null, throughputPerSecond: null, costUsd: null, errorRatio: null },
  ]);
  expect(data.latency[0]).toEqual([1767225600, 1767225660]);
  expect(data.latency[2]).toEqual([null, 9]);
  expect(data.cost[1]).toEqual([null, 0.5]);
});

it("keeps only the last seconds of a live window", () => {
  let window = emptyWindow(2);
  for (let t = 0; t < 10; t++) window = push(window, t, [t, t * 10], 3);
  expect(window.t).toEqual([6, 7, 8, 9]);
  expect(window.values[1]).toEqual([60, 70, 80, 90]);
});

it("pins the x-axis to the whole range chosen, ending now", () => {
  const now = Date.parse("2026-01-01T01:00:00Z");
  expect(xRangeOf("1h", now)).toEqual([1767225600, 1767229200]);
  expect(xRangeOf("15m", now + 999)).toEqual([1767228300, 1767229200]);
});
