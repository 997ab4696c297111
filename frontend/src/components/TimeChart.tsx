/** A time chart on uPlot (small, canvas, fast enough for live updates). Loaded lazily through
 * Chart.tsx so the overview's first load carries no charting code. */
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface SeriesSpec {
  label: string;
  color: string;
}

export interface TimeChartProps {
  title: string;
  series: readonly SeriesSpec[];
  /** [x seconds, ...one column per series] */
  data: readonly (readonly (number | null)[])[];
  unit?: string;
  height?: number;
}

export default function TimeChart({ title, series, data, unit = "", height = 180 }: TimeChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(240, element.clientWidth),
      height,
      legend: { show: true },
      axes: [
        { stroke: "#4b5563", grid: { stroke: "#e5e7eb" } },
        {
          stroke: "#4b5563",
          grid: { stroke: "#e5e7eb" },
          values: (_u, ticks) => ticks.map((tick) => `${trim(tick)}${unit}`),
          size: 60,
        },
      ],
      series: [
        {},
        ...series.map((spec) => ({
          label: spec.label,
          stroke: spec.color,
          width: 2,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v === null ? "—" : `${trim(v)}${unit}`),
        })),
      ],
    };
    plot.current = new uPlot(options, data as uPlot.AlignedData, element);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(240, element.clientWidth), height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // the chart is rebuilt only when its shape changes; new data goes through setData below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [series.map((s) => s.label).join(","), unit, height]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  const points = data[0]?.length ?? 0;
  return (
    <figure className="chart" aria-label={title}>
      <figcaption>{title}</figcaption>
      <div ref={host} role="img" aria-label={`${title}: ${points} points`} />
      {points === 0 ? <p className="muted chart-empty">No data in this range yet.</p> : null}
    </figure>
  );
}

function trim(value: number): string {
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 1) return value.toFixed(1).replace(/\.0$/, "");
  return value.toPrecision(2);
}
