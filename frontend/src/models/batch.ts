/** The batch page's model: which format a file looks like (the backend checks it against the
 * job's spec.input.format), its upload with progress (XMLHttpRequest, since
 * fetch reports no upload progress), and the run's phase from the BatchJob's summary. */
import { authHeaders, paths } from "../api/client";
import { ApiError } from "../api/client";
import type { Summary, Upload } from "../api/types";
import { percent } from "./format";
import { health } from "./summaries";

export type InputFormat = "jsonl" | "csv" | "openai";

/** The format from the file's name and first line: an OpenAI batch line has custom_id and body. */
export function detectFormat(fileName: string, firstLine: string): InputFormat {
  const lower = fileName.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  try {
    const first: unknown = JSON.parse(firstLine);
    if (typeof first === "object" && first !== null && "custom_id" in first && "body" in first) {
      return "openai";
    }
  } catch {
    // not JSON
  }
  return "jsonl";
}

export const ACCEPT = ".jsonl,.json,.ndjson,.csv";

export function uploadInput(
  ns: string,
  name: string,
  file: File,
  onProgress: (loaded: number, total: number) => void,
  xhr: XMLHttpRequest = new XMLHttpRequest(),
): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.open("POST", paths.batchInput(ns, name));
    for (const [header, value] of Object.entries(authHeaders())) xhr.setRequestHeader(header, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onerror = () => reject(new ApiError("The upload failed: the console backend cannot be reached"));
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // keep null
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        onProgress(file.size, file.size);
        resolve(body as Upload);
        return;
      }
      const message =
        (body as { error?: { message?: string } } | null)?.error?.message ??
        `${xhr.status} ${xhr.statusText}`;
      reject(new ApiError(`The upload failed: ${message}`, { status: xhr.status }));
    };
    xhr.send(form);
  });
}

export type Phase = "idle" | "running" | "succeeded" | "failed";

/** States and reasons of a run on its way; PreviousRunDeleting: a job created anew ("Run again")
 * whose run waits for the old run's Kubernetes Job to be deleted. */
const RUNNING = new Set([
  "Running", "Starting", "Submitted", "Estimating", "Estimated", "JobCreated", "PreviousRunDeleting",
]);

/** A BatchJob's summary reads its Succeeded condition as `ready`: True once the latest run
 * succeeded, False when it failed (or is refused), Unknown while one is on its way or none is. */
export function phase(summary: Summary | undefined): Phase {
  if (!summary) return "idle";
  if (summary.ready === "True") return "succeeded";
  if (health(summary) === "failed") return "failed";
  if (RUNNING.has(summary.state) || RUNNING.has(summary.reason)) return "running";
  const progress = summary.progress;
  if (progress && progress.total !== null && progress.done < progress.total) return "running";
  return "idle";
}

export function progressPercent(summary: Summary | undefined): number {
  if (phase(summary) === "succeeded") return 100;
  if (!summary?.progress || summary.progress.total === null) return 0;
  return percent(summary.progress.done, summary.progress.total);
}
