/** One resource: status and conditions, recent Events, its YAML, and charts of latency percentiles,
 * throughput and cost over a chosen time range. */
import { useMemo, useState } from "react";
import { api } from "../api/client";
import type { Condition, KubeEvent, Plural, Range } from "../api/types";
import { Chart, COLORS } from "../components/Chart";
import { useAsync } from "../components/hooks";
import {
  DataTable,
  ErrorMessage,
  Loading,
  Metric,
  Metrics,
  Panel,
  Segmented,
  StatusBadge,
} from "../components/ui";
import { useWatch } from "../components/watch";
import { age, costLabel, ms, rate, usd } from "../models/format";
import { kindInfo } from "../models/kinds";
import { href } from "../models/route";
import { RANGES, toChartData, xRangeOf } from "../models/series";
import { keyOf } from "../models/summaries";

const LATENCY = [
  { label: "p50", color: COLORS.p50 },
  { label: "p95", color: COLORS.p95 },
  { label: "p99", color: COLORS.p99 },
];
const THROUGHPUT = [{ label: "per second", color: COLORS.throughput }];
const COST = [{ label: "cost over the stats window (USD)", color: COLORS.cost }];

export default function ResourceDetail({ plural, ns, name }: { plural: Plural; ns: string; name: string }) {
  const key = `${plural}/${ns}/${name}`;
  const detail = useAsync(() => api.detail(plural, ns, name), key, 5000);
  const [range, setRange] = useState<Range>("1h");
  const series = useAsync(() => api.series(plural, ns, name, range), `${key}?${range}`, 10000);
  const live = useWatch().summaries.get(keyOf({ plural, namespace: ns, name }));
  const summary = live ?? detail.data?.summary;
  const charts = useMemo(() => toChartData(series.data?.points ?? []), [series.data]);
  // the chosen range ending at the latest fetch, so the charts move along as time passes
  const xRange = useMemo(() => xRangeOf(range, Date.now()), [range, series.data]);
  const info = kindInfo(plural);
  const conditions: Condition[] = detail.data?.object.status?.conditions ?? [];

  if (!detail.data && detail.error) {
    return (
      <div className="page">
        <h1>{name}</h1>
        <ErrorMessage title={`Cannot show ${info?.kind ?? plural} ${ns}/${name}`} error={detail.error} />
      </div>
    );
  }
  return (
    <div className="page">
      <div className="page-head">
        <p className="crumbs">
          <a href={href({ page: "list", plural })}>{info?.title ?? plural}</a> / {ns}
        </p>
        <h1>
          {name} {summary ? <StatusBadge summary={summary} /> : null}
        </h1>
        {summary?.message ? <p className="muted">{summary.message}</p> : null}
        {info ? (
          <p>
            <a className="button" href={href({ page: info.tryPage, ns, name })}>
              {info.tryLabel}
            </a>
          </p>
        ) : null}
      </div>
      {detail.error ? <ErrorMessage title="Refresh failed" error={detail.error} /> : null}
      {summary ? (
        <Metrics>
          <Metric label="p50" value={ms(summary.latency?.p50Ms)} />
          <Metric label="p95" value={ms(summary.latency?.p95Ms)} />
          <Metric label="p99" value={ms(summary.latency?.p99Ms)} />
          <Metric label="Throughput" value={rate(summary.throughputPerSecond)} />
          <Metric label={costLabel(summary.costWindow)} value={usd(summary.costUsd)} />
          <Metric label="Stats" value={summary.observedAt ? age(summary.observedAt) : "—"} hint={summary.window ?? ""} />
        </Metrics>
      ) : (
        <Loading what="the resource" />
      )}
      <Panel
        title="Over time"
        actions={<Segmented label="Time range" options={RANGES} value={range} onChange={setRange} />}
      >
        {series.error ? <ErrorMessage title="No history" error={series.error} /> : null}
        <div className="charts">
          <Chart title="Latency percentiles" series={LATENCY} data={charts.latency} unit=" ms" xRange={xRange} />
          <Chart title="Throughput" series={THROUGHPUT} data={charts.throughput} unit="/s" xRange={xRange} />
          <Chart title="Cost" series={COST} data={charts.cost} unit="" xRange={xRange} />
        </div>
      </Panel>
      <Panel title="Conditions">
        <DataTable<Condition>
          caption="Conditions"
          rows={conditions}
          rowKey={(row) => row.type}
          columns={[
            { header: "Type", cell: (row) => row.type },
            {
              header: "Status",
              cell: (row) => <span className={`cond cond-${row.status.toLowerCase()}`}>{row.status}</span>,
            },
            { header: "Reason", cell: (row) => row.reason ?? "" },
            { header: "Message", cell: (row) => row.message ?? "" },
            { header: "Since", cell: (row) => age(row.lastTransitionTime) },
          ]}
          empty="No conditions reported yet."
        />
      </Panel>
      <Panel title="Recent events">
        <DataTable<KubeEvent>
          caption="Recent events"
          rows={detail.data?.events ?? []}
          rowKey={(row) => `${row.reason}/${row.lastTimestamp ?? ""}/${row.message}`}
          columns={[
            { header: "Type", cell: (row) => <span className={row.type === "Warning" ? "warn" : ""}>{row.type}</span> },
            { header: "Reason", cell: (row) => row.reason },
            { header: "Message", cell: (row) => row.message },
            { header: "Count", cell: (row) => row.count, numeric: true },
            { header: "Last seen", cell: (row) => age(row.lastTimestamp) },
          ]}
          empty="No events."
        />
      </Panel>
      <Panel title="YAML">
        {detail.data ? (
          <pre className="yaml" tabIndex={0} aria-label="Spec and status as YAML">
            {detail.data.yaml}
          </pre>
        ) : (
          <Loading what="YAML" />
        )}
      </Panel>
    </div>
  );
}
