/** Batch: upload an input file with a progress bar, see the estimate against the budget, start the
 * run, watch it to completion and download its results. */
import { useState } from "react";
import { api, paths, request } from "../api/client";
import type { Upload } from "../api/types";
import { PickResource } from "../components/PickResource";
import { useAsync } from "../components/hooks";
import { ErrorMessage, Metric, Metrics, Panel, ProgressBar } from "../components/ui";
import { useWatch } from "../components/watch";
import { ACCEPT, detectFormat, phase, progressPercent, uploadInput, type InputFormat } from "../models/batch";
import { bytes, usd } from "../models/format";
import { keyOf } from "../models/summaries";

const FORMAT_NAMES: Record<InputFormat, string> = { jsonl: "JSON lines", csv: "CSV", openai: "an OpenAI batch file" };

async function download(ns: string, name: string, file: "output" | "errors") {
  const response = await request(paths.results(ns, name, file));
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${name}-${file}.jsonl`;
  document.body.append(link);
  link.click();
  link.remove();
  // the browser reads the blob after this handler returns
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

/** The run button's label; "Run again" deletes the finished job and creates it anew. */
function runLabel(runPhase: string, starting: boolean): string {
  const again = runPhase === "succeeded" || runPhase === "failed";
  if (starting) return again ? "Deleting the finished job…" : "Starting…";
  return again ? "Run again" : "Start";
}

export default function Batch({ ns, name }: { ns?: string | undefined; name?: string | undefined }) {
  const [file, setFile] = useState<File | null>(null);
  const [format, setFormat] = useState<InputFormat>("jsonl");
  const [uploaded, setUploaded] = useState<Upload | null>(null);
  const [sentPercent, setSentPercent] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const summary = useWatch().summaries.get(keyOf({ plural: "batchjobs", namespace: ns ?? "", name: name ?? "" }));
  const estimate = useAsync(
    () => (ns && name ? api.estimate(ns, name) : Promise.resolve(null)),
    `${ns}/${name}/${uploaded?.uri ?? ""}`,
  );
  const runPhase = phase(summary);

  async function choose(chosen: File | null) {
    setFile(chosen);
    setUploaded(null);
    setSentPercent(null);
    if (chosen) setFormat(detectFormat(chosen.name, (await chosen.slice(0, 4096).text()).split("\n")[0] ?? ""));
  }

  async function upload() {
    if (!ns || !name || !file) return;
    setError(null);
    setSentPercent(0);
    try {
      const result = await uploadInput(ns, name, file, (loaded, total) =>
        setSentPercent(total ? Math.round((loaded / total) * 100) : 0),
      );
      setUploaded(result);
    } catch (failure) {
      setError((failure as Error).message);
      setSentPercent(null);
    }
  }

  async function start() {
    if (!ns || !name) return;
    setError(null);
    setStarting(true);
    try {
      await api.start(ns, name);
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setStarting(false);
    }
  }

  const overBudget =
    estimate.data?.budgetUsd != null &&
    estimate.data.estimatedCostUsd !== null &&
    Number(estimate.data.estimatedCostUsd) > Number(estimate.data.budgetUsd);

  return (
    <div className="page">
      <div className="page-head">
        <h1>Batch</h1>
        <PickResource plural="batchjobs" page="batch" ns={ns} name={name} />
      </div>
      {!ns || !name ? (
        <p className="muted">Choose a BatchJob to feed.</p>
      ) : (
        <>
          {error ? <ErrorMessage title="Batch" error={error} /> : null}
          <Panel title="1. Upload input">
            <div className="form-row">
              <label>
                File (JSONL, CSV or an OpenAI batch file){" "}
                <input type="file" accept={ACCEPT} onChange={(event) => void choose(event.target.files?.[0] ?? null)} />
              </label>
              <button type="button" disabled={!file || (sentPercent !== null && !uploaded)} onClick={() => void upload()}>
                Upload
              </button>
            </div>
            {file ? (
              <p className="muted small">
                {file.name} · {bytes(file.size)} · looks like {FORMAT_NAMES[format]} (the job checks it against
                its spec.input.format)
              </p>
            ) : null}
            {sentPercent !== null ? <ProgressBar value={sentPercent} label="Upload" /> : null}
            {uploaded ? (
              <p role="status">
                Uploaded {uploaded.records} records ({bytes(uploaded.bytes)}) to <code>{uploaded.uri}</code>
              </p>
            ) : null}
          </Panel>
          <Panel title="2. Estimate and budget">
            {estimate.error ? <ErrorMessage title="No estimate" error={estimate.error} /> : null}
            {estimate.data ? (
              <Metrics>
                <Metric label="Records" value={estimate.data.records} />
                <Metric
                  label="Estimated cost (upper bound)"
                  value={estimate.data.estimatedCostUsd === null ? "after the job estimates" : usd(estimate.data.estimatedCostUsd)}
                />
                <Metric label="Budget" value={estimate.data.budgetUsd ? usd(estimate.data.budgetUsd) : "none"} />
              </Metrics>
            ) : null}
            {overBudget ? (
              <p className="warn" role="alert">
                The estimate is above the budget: the job will refuse to start.
              </p>
            ) : null}
          </Panel>
          <Panel title="3. Run">
            <div className="toolbar">
              <button type="button" disabled={starting || runPhase === "running"} onClick={() => void start()}>
                {runLabel(runPhase, starting)}
              </button>
              <span role="status" data-phase={runPhase}>
                {summary ? `${summary.state || runPhase}${summary.message ? ` — ${summary.message}` : ""}` : "Waiting for status…"}
              </span>
            </div>
            <ProgressBar value={progressPercent(summary)} label="Run progress" />
            {summary?.progress ? (
              <p className="muted small">
                {summary.progress.done} of {summary.progress.total ?? "?"} records · cost so far {usd(summary.costUsd)}
              </p>
            ) : null}
            {runPhase === "succeeded" ? (
              <div className="toolbar">
                <button type="button" onClick={() => void download(ns, name, "output").catch((e: Error) => setError(e.message))}>
                  Download results
                </button>
                <button type="button" className="secondary" onClick={() => void download(ns, name, "errors").catch((e: Error) => setError(e.message))}>
                  Download errors
                </button>
              </div>
            ) : null}
          </Panel>
        </>
      )}
    </div>
  );
}
