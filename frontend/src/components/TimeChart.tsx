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
  /** [from, to] in seconds: the x-axis shows this whole span however few points there are */
  xRange?: readonly [number, number] | undefined;
}

export default function TimeChart({ title, series, data, unit = "", height = 180, xRange }: TimeChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const pinned = useRef(xRange);
  pinned.current = xRange;

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(240, element.clientWidth),
      height,
      legend: { show: true },
      scales: {
        x: { time: true, range: (_u, min, max) => (pinned.current ? [pinned.current[0], pinned.current[1]] : [min, max]) },
      },
      axes: [
        { stroke: "#4b5563", grid: { stroke: "#e5e7eb" } },
        {
          stroke: "#4b5563",
          grid: { stroke: "#e5e7eb" },
          values: (_u, ticks) => ticks.map((tick) => `${trim(tick)}${unit}`),
          size: (_u, values) => labelWidth(values),
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
  }, [data, xRange?.[0], xRange?.[1]]);

  const points = data[0]?.length ?? 0;
  return (
    <figure className="chart" aria-label={title}>
      <figcaption>{title}</figcaption>
      <div ref={host} role="img" aria-label={`${title}: ${points} points`} />
      {points === 0 ? <p className="muted chart-empty">No data in this range yet.</p> : null}
    </figure>
  );
}

/** The y-axis's width for its longest label ("2000 ms" must not be cut to "000 ms"). */
function labelWidth(values: readonly string[] | null | undefined): number {
  const longest = Math.max(0, ...(values ?? []).map((value) => value.length));
  return Math.max(40, 16 + longest * 7);
}

function trim(value: number): string {
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 1) return value.toFixed(1).replace(/\.0$/, "");
  return value.toPrecision(2);
}
