/** Stream live view: the pipeline's results as they arrive, events/s and lag charted live, buttons
 * that send sample events and a poison event, and the dead letters that poison ends up in. */
import { useEffect, useMemo, useRef, useState } from "react";
import { api, paths } from "../api/client";
import { follow } from "../api/sse";
import { Chart, COLORS } from "../components/Chart";
import { PickResource } from "../components/PickResource";
import { useAsync } from "../components/hooks";
import { DataTable, ErrorMessage, Metric, Metrics, Panel } from "../components/ui";
import { ms, rate, usd } from "../models/format";
import { parseResult, sampleEvents, tally, type LiveResult } from "../models/live";
import { emptyWindow, push, type Window } from "../models/series";

const KEEP_RESULTS = 200;
const WINDOW_SECONDS = 120;
const RATE = [{ label: "results/s", color: COLORS.throughput }];
const LAG = [{ label: "max lag", color: COLORS.lag }];

interface DeadLetter {
  timestampMs?: number;
  value?: { key?: string; reason?: string; error?: string };
}

function deadLetterRows(body: unknown): DeadLetter[] {
  const items = (body as { items?: unknown } | null)?.items;
  return Array.isArray(items) ? (items as DeadLetter[]) : [];
}

export default function StreamLive({ ns, name }: { ns?: string | undefined; name?: string | undefined }) {
  const [results, setResults] = useState<LiveResult[]>([]);
  const [window_, setWindow] = useState<Window>(() => emptyWindow(2));
  const [connection, setConnection] = useState<{ connected: boolean; error: string | null }>({
    connected: false,
    error: null,
  });
  const [sendError, setSendError] = useState<string | null>(null);
  const [sent, setSent] = useState(0);
  const recent = useRef<LiveResult[]>([]);

  useEffect(() => {
    if (!ns || !name) return;
    setResults([]);
    setWindow(emptyWindow(2));
    recent.current = [];
    const subscription = follow(paths.live(ns, name), {
      onEvent: (event) => {
        const result = parseResult(event.data, Date.now());
        if (!result) return;
        recent.current.push(result);
        setResults((previous) => [result, ...previous].slice(0, KEEP_RESULTS));
      },
      onState: setConnection,
    });
    // Once a second: the last whole second's count and worst lag go on the charts.
    const timer = setInterval(() => {
      const second = Math.floor(Date.now() / 1000) - 1;
      const { count, maxLagMs } = tally(recent.current, second);
      recent.current = recent.current.filter((result) => result.receivedAt >= second * 1000);
      setWindow((previous) => push(previous, second, [count, maxLagMs], WINDOW_SECONDS));
    }, 1000);
    return () => {
      subscription.close();
      clearInterval(timer);
    };
  }, [ns, name]);

  const deadLetters = useAsync(
    () => (ns && name ? api.deadLetters(ns, name) : Promise.resolve(null)),
    `${ns}/${name}`,
    3000,
  );
  const rateData = useMemo(() => [window_.t, window_.values[0] ?? []], [window_]);
  const lagData = useMemo(() => [window_.t, window_.values[1] ?? []], [window_]);
  const last = window_.values[0]?.at(-1) ?? null;
  const lastLag = window_.values[1]?.at(-1) ?? null;

  async function send(kind: "samples" | "poison") {
    if (!ns || !name) return;
    setSendError(null);
    try {
      const answer =
        kind === "samples" ? await api.sendEvents(ns, name, sampleEvents(10)) : await api.sendPoison(ns, name);
      setSent((previous) => previous + answer.sent);
      if (kind === "poison") window.setTimeout(deadLetters.reload, 1500);
    } catch (error) {
      setSendError((error as Error).message);
    }
  }

  return (
    <div className="page">
      <div className="page-head">
        <h1>Stream live view</h1>
        <PickResource plural="streampipelines" page="stream" ns={ns} name={name} />
      </div>
      {!ns || !name ? (
        <p className="muted">Choose a StreamPipeline to watch.</p>
      ) : (
        <>
          <div className="toolbar">
            <button type="button" onClick={() => void send("samples")}>
              Send 10 sample events
            </button>
            <button type="button" className="danger" onClick={() => void send("poison")}>
              Send a poison event
            </button>
            <span className="muted" role="status">
              {connection.connected ? "Receiving results" : (connection.error ?? "Connecting…")} · {sent} sent
            </span>
          </div>
          {sendError ? <ErrorMessage title="Sending failed" error={sendError} /> : null}
          <Metrics>
            <Metric label="Results/s (last second)" value={rate(last)} />
            <Metric label="Lag (last second, max)" value={ms(lastLag)} />
            <Metric label="Results received" value={results.length >= KEEP_RESULTS ? `${KEEP_RESULTS}+` : results.length} />
          </Metrics>
          <div className="charts">
            <Chart title="Results per second" series={RATE} data={rateData} unit="/s" />
            <Chart title="Lag (ingest to result)" series={LAG} data={lagData} unit=" ms" />
          </div>
          <Panel title="Results">
            <DataTable<LiveResult>
              caption="Results as they arrive"
              rows={results.slice(0, 50)}
              rowKey={(row) => `${row.id}/${row.receivedAt}`}
              columns={[
                { header: "Id", cell: (row) => row.id },
                { header: "Status", cell: (row) => <span className={row.status === "ok" ? "" : "warn"}>{row.status}</span> },
                { header: "Result", cell: (row) => <span className="clip">{row.text}</span> },
                { header: "Lag", cell: (row) => ms(row.lagMs), numeric: true },
                { header: "Cost", cell: (row) => usd(row.costUsd), numeric: true },
              ]}
              empty="No results yet: send sample events."
            />
          </Panel>
          <Panel title="Dead letters">
            {deadLetters.error ? <ErrorMessage title="Dead letters unavailable" error={deadLetters.error} /> : null}
            <DataTable<DeadLetter>
              caption="Dead letters"
              rows={deadLetterRows(deadLetters.data)}
              rowKey={(row) => `${row.value?.key ?? ""}/${row.timestampMs ?? ""}`}
              columns={[
                { header: "Id", cell: (row) => row.value?.key ?? "" },
                { header: "Reason", cell: (row) => <span className="warn">{row.value?.reason ?? ""}</span> },
                { header: "Error", cell: (row) => <span className="clip">{row.value?.error ?? ""}</span> },
                { header: "When", cell: (row) => (row.timestampMs ? new Date(row.timestampMs).toLocaleTimeString() : "") },
              ]}
              empty="No dead letters: a poison event lands here."
            />
          </Panel>
        </>
      )}
    </div>
  );
}
