/** The lazily loaded chart: pages import this, and uPlot arrives only when a chart is first shown. */
import { lazy, Suspense } from "react";
import type { TimeChartProps } from "./TimeChart";

const TimeChart = lazy(() => import("./TimeChart"));

export function Chart(props: TimeChartProps) {
  return (
    <Suspense fallback={<div className="chart chart-loading" style={{ height: (props.height ?? 180) + 40 }} />}>
      <TimeChart {...props} />
    </Suspense>
  );
}

export const COLORS = {
  p50: "#2563eb",
  p95: "#d97706",
  p99: "#dc2626",
  throughput: "#059669",
  cost: "#7c3aed",
  lag: "#db2777",
} as const;
