/** One resource on the overview: its status, p95 latency, throughput and cost today, and links to its
 * detail page and to the page that tries it. Memoised: a watch event re-renders only its own card. */
import { memo } from "react";
import type { Summary } from "../api/types";
import { costLabel, ms, percent, rate, usd } from "../models/format";
import { kindInfo } from "../models/kinds";
import { href } from "../models/route";
import { health } from "../models/summaries";
import { Metric, Metrics, StatusBadge } from "./ui";

export const ResourceCard = memo(function ResourceCard({ summary }: { summary: Summary }) {
  const info = kindInfo(summary.plural);
  const verdict = health(summary);
  const headingId = `card-${summary.plural}-${summary.namespace}-${summary.name}`;
  return (
    <article className={`card card-${verdict}`} aria-labelledby={headingId} data-resource={summary.name}>
      <header className="card-head">
        <div>
          <h3 id={headingId}>
            <a href={href({ page: "detail", plural: summary.plural, ns: summary.namespace, name: summary.name })}>
              {summary.name}
            </a>
          </h3>
          <p className="muted small">
            {summary.kind} · {summary.namespace}
          </p>
        </div>
        <StatusBadge summary={summary} />
      </header>
      {verdict === "failed" && summary.message ? <p className="card-message">{summary.message}</p> : null}
      <Metrics>
        <Metric label="p95 latency" value={ms(summary.latency?.p95Ms)} />
        <Metric label="Throughput" value={rate(summary.throughputPerSecond)} />
        <Metric label={costLabel(summary.costWindow)} value={usd(summary.costUsd)} />
        {summary.progress ? (
          <Metric label="Progress" value={summary.progress.total === null ? `${summary.progress.done} done` : `${percent(summary.progress.done, summary.progress.total)}%`} />
        ) : null}
      </Metrics>
      {info ? (
        <footer className="card-foot">
          <a href={href({ page: info.tryPage, ns: summary.namespace, name: summary.name })}>{info.tryLabel}</a>
          {summary.stale ? <span className="muted small">stats are old</span> : null}
        </footer>
      ) : null}
    </article>
  );
});
