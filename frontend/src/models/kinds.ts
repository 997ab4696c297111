/** The three kinds as the console shows them: names, short names and which page tries each one. */
import type { Plural } from "../api/types";

export interface KindInfo {
  plural: Plural;
  kind: string;
  title: string;
  short: string;
  /** the page that exercises one resource of this kind */
  tryPage: "playground" | "stream" | "batch";
  tryLabel: string;
}

export const KINDS: readonly KindInfo[] = [
  {
    plural: "realtimeendpoints",
    kind: "RealtimeEndpoint",
    title: "Realtime endpoints",
    short: "rte",
    tryPage: "playground",
    tryLabel: "Open playground",
  },
  {
    plural: "streampipelines",
    kind: "StreamPipeline",
    title: "Stream pipelines",
    short: "spipe",
    tryPage: "stream",
    tryLabel: "Open live view",
  },
  {
    plural: "batchjobs",
    kind: "BatchJob",
    title: "Batch jobs",
    short: "bjob",
    tryPage: "batch",
    tryLabel: "Open batch",
  },
];

export function kindInfo(plural: string): KindInfo | undefined {
  return KINDS.find((info) => info.plural === plural);
}
