/** Time series for the charts: the backend's points as uPlot's column arrays (seconds on x, null
 * for gaps), and the live view's rolling window. Pure. */
import type { Range, SeriesPoint } from "../api/types";

export const RANGES: readonly Range[] = ["15m", "1h", "6h", "24h"];

const RANGE_SECONDS: Record<Range, number> = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400 };

/** The x-axis of a chart of `range` ending now, in seconds: the whole range the person chose, not
 * just the span the points happen to cover (an hour's chart with five minutes of history shows
 * five minutes at its right end). */
export function xRangeOf(range: Range, nowMs: number): [number, number] {
  const now = Math.floor(nowMs / 1000);
  return [now - RANGE_SECONDS[range], now];
}

export type Columns = [number[], ...(number | null)[][]];

export interface ChartData {
  latency: Columns;
  throughput: Columns;
  cost: Columns;
}

const num = (value: number | null | undefined): number | null =>
  value === null || value === undefined || !Number.isFinite(value) ? null : value;

export function toChartData(points: readonly SeriesPoint[]): ChartData {
  const sorted = [...points].sort((a, b) => Date.parse(a.t) - Date.parse(b.t));
  const x = sorted.map((point) => Date.parse(point.t) / 1000);
  return {
    latency: [
      x,
      sorted.map((point) => num(point.p50Ms)),
      sorted.map((point) => num(point.p95Ms)),
      sorted.map((point) => num(point.p99Ms)),
    ],
    throughput: [x, sorted.map((point) => num(point.throughputPerSecond))],
    cost: [x, sorted.map((point) => (point.costUsd === null ? null : num(Number(point.costUsd))))],
  };
}

/** A fixed-length window of live samples (the stream view's events/s and lag): appends, drops what
 * is older than `seconds`, returns a new value each time so React sees the change. */
export interface Window {
  t: number[];
  values: number[][];
}

export function emptyWindow(series: number): Window {
  return { t: [], values: Array.from({ length: series }, () => []) };
}

export function push(window: Window, t: number, sample: readonly number[], seconds: number): Window {
  const keepFrom = t - seconds;
  let start = 0;
  while (start < window.t.length && (window.t[start] ?? 0) < keepFrom) start += 1;
  return {
    t: [...window.t.slice(start), t],
    values: window.values.map((column, index) => [...column.slice(start), sample[index] ?? 0]),
  };
}
