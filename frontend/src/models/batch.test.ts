import { expect, it } from "vitest";
import { summary } from "../testing/fixtures";
import { detectFormat, phase, progressPercent } from "./batch";

it("tells the input format from the name and first line", () => {
  expect(detectFormat("t.csv", "id,text")).toBe("csv");
  expect(detectFormat("t.jsonl", '{"id": 1, "text": "x"}')).toBe("jsonl");
  expect(detectFormat("b.jsonl", '{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}')).toBe(
    "openai",
  );
});

it("reads the run's phase and progress from the BatchJob's summary", () => {
  const running = summary({
    plural: "batchjobs",
    ready: "Unknown",
    reason: "Running",
    state: "Running",
    progress: { done: 50, total: 200 },
  });
  expect(phase(running)).toBe("running");
  expect(progressPercent(running)).toBe(25);
  const done = summary({ plural: "batchjobs", ready: "True", reason: "Succeeded", state: "Succeeded" });
  expect(phase(done)).toBe("succeeded");
  expect(progressPercent(done)).toBe(100);
  expect(phase(summary({ plural: "batchjobs", ready: "False", reason: "Failed", state: "Failed" }))).toBe("failed");
  expect(phase(summary({ plural: "batchjobs", ready: "False", reason: "Suspended", state: "Suspended" }))).toBe("idle");
  expect(phase(undefined)).toBe("idle");
});

it("shows a job created anew as on its way while its old run's Job is still being deleted", () => {
  const waiting = summary({ plural: "batchjobs", ready: "Unknown", reason: "PreviousRunDeleting", state: "Pending" });
  expect(phase(waiting)).toBe("running");
});
