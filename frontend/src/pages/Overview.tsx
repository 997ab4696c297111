/** Overview: every resource as a card, live from the watch, failures first and counted on top;
 * long lists render a page at a time as they scroll (hundreds of resources stay responsive). */
import { useDeferredValue, useMemo, useState } from "react";
import { useDebounced, useIncremental } from "../components/hooks";
import { ResourceCard } from "../components/ResourceCard";
import { ErrorMessage, Loading } from "../components/ui";
import { useWatch } from "../components/watch";
import { counts, matches, ordered } from "../models/summaries";

export default function Overview() {
  const { summaries, loaded, error, connected } = useWatch();
  const [query, setQuery] = useState("");
  const deferred = useDeferredValue(useDebounced(query, 150));
  const items = useMemo(() => ordered(summaries), [summaries]);
  const shown = useMemo(() => items.filter((item) => matches(item, deferred)), [items, deferred]);
  const { shown: page, sentinel } = useIncremental(shown);
  const tally = counts(items);
  return (
    <div className="page">
      <div className="page-head">
        <h1>Overview</h1>
        <p className="tally" aria-live="polite">
          <span>{items.length} resources</span>
          <span className="tally-ok">{tally.ok} ready</span>
          <span className="tally-progressing">{tally.progressing} progressing</span>
          <span className={tally.failed ? "tally-failed" : "muted"}>{tally.failed} failing</span>
          {tally.stale ? <span className="tally-stale">{tally.stale} stale</span> : null}
        </p>
        <label className="search">
          <span className="sr-only">Filter resources</span>
          <input
            type="search"
            placeholder="Filter by name, namespace, kind or state"
            value={query}
            onChange={(event) => setQuery(event.target.value)}
          />
        </label>
      </div>
      {error && !connected ? <ErrorMessage title="Live updates interrupted" error={error} /> : null}
      {!loaded ? (
        <Loading what="resources" />
      ) : items.length === 0 ? (
        <p className="muted">
          No RealtimeEndpoints, StreamPipelines or BatchJobs here yet. Apply one of the examples
          (kubectl apply -f examples/) and it appears at once.
        </p>
      ) : (
        <div className="cards" aria-label="Resources">
          {page.map((summary) => (
            <ResourceCard key={`${summary.plural}/${summary.namespace}/${summary.name}`} summary={summary} />
          ))}
          {page.length < shown.length ? (
            // keyed by the count: a new sentinel is observed afresh, even if it is still in view
            <p key={page.length} ref={sentinel} className="muted more" role="status">
              Showing {page.length} of {shown.length}; more as you scroll.
            </p>
          ) : null}
        </div>
      )}
    </div>
  );
}
