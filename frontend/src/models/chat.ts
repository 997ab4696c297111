/** The playground's chat: one streamed OpenAI chat completion through the console's proxy, measured
 * the way a caller feels it (time to first token, total latency) and labelled with what the gateway
 * says (cache hit or miss, cost). The stream parsing is pure; `sendChat` does the I/O. */
import { paths, request } from "../api/client";
import { readSse } from "../api/sse";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Answer {
  content: string;
  cache: string;
  costUsd: string | null;
  /** the gateway's own latency header when it sent one, else what the page measured */
  latencyMs: number;
  ttftMs: number | null;
  promptTokens: number | null;
  completionTokens: number | null;
}

/** What one stream event adds to the answer: text, usage and (for a console that appends it) cost. */
export interface Delta {
  text: string;
  promptTokens?: number;
  completionTokens?: number;
  costUsd?: string;
}

export function parseChunk(data: string): Delta | "done" | null {
  if (data.trim() === "[DONE]") return "done";
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof chunk !== "object" || chunk === null) return null;
  const body = chunk as {
    choices?: { delta?: { content?: unknown }; message?: { content?: unknown } }[];
    usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
    costUsd?: unknown;
    cost_usd?: unknown;
  };
  const delta: Delta = { text: "" };
  for (const choice of body.choices ?? []) {
    const content = choice.delta?.content ?? choice.message?.content;
    if (typeof content === "string") delta.text += content;
  }
  if (body.usage && typeof body.usage.prompt_tokens === "number") {
    delta.promptTokens = body.usage.prompt_tokens;
  }
  if (body.usage && typeof body.usage.completion_tokens === "number") {
    delta.completionTokens = body.usage.completion_tokens;
  }
  const cost = body.costUsd ?? body.cost_usd;
  if (typeof cost === "string" || typeof cost === "number") delta.costUsd = String(cost);
  return delta;
}

export interface Clock {
  now(): number;
}

const performanceClock: Clock = { now: () => performance.now() };

/** Sends `messages` to the endpoint as a streamed chat and calls `onText` with the text so far. */
export async function sendChat(
  ns: string,
  name: string,
  messages: ChatMessage[],
  {
    model = "",
    apiKey = "",
    onText = () => {},
    signal,
    clock = performanceClock,
  }: { model?: string; apiKey?: string; onText?: (text: string) => void; signal?: AbortSignal; clock?: Clock } = {},
): Promise<Answer> {
  const started = clock.now();
  const body: Record<string, unknown> = {
    messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (model) body.model = model;
  const response = await request(paths.chat(ns, name), {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "text/event-stream",
      // an endpoint's own key (spec.auth); Authorization carries the Kubernetes token
      ...(apiKey ? { "x-tiers-api-key": apiKey } : {}),
    },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  const closed: { event: Closing | null } = { event: null };
  const answer: Answer = {
    content: "",
    cache: response.headers.get("x-tiers-cache") ?? "unknown",
    costUsd: response.headers.get("x-tiers-cost-usd"),
    latencyMs: 0,
    ttftMs: null,
    promptTokens: null,
    completionTokens: null,
  };
  const isStream = (response.headers.get("content-type") ?? "").includes("text/event-stream");
  if (!isStream) {
    const delta = parseChunk(await response.text());
    if (delta && delta !== "done") merge(answer, delta);
    answer.ttftMs = clock.now() - started;
  } else {
    await readSse(
      response,
      (event) => {
        if (event.event === "tiers") {
          closed.event = parseClosing(event.data);
          return;
        }
        const delta = parseChunk(event.data);
        if (delta === null || delta === "done") return;
        if (delta.text && answer.ttftMs === null) answer.ttftMs = clock.now() - started;
        merge(answer, delta);
        if (delta.text) onText(answer.content);
      },
      signal,
    );
  }
  const measured = clock.now() - started;
  if (closed.event) {
    const { latencyMs, ttftMs, costUsd, usage } = closed.event;
    if (costUsd !== null) answer.costUsd = costUsd;
    if (usage) merge(answer, { text: "", ...usage });
    if (latencyMs !== null) answer.latencyMs = latencyMs;
    if (ttftMs !== null) answer.ttftMs = ttftMs;
    onText(answer.content);
    return answer;
  }
  // A streamed reply's headers leave before its last token, so its latency is the page's own
  // measurement; a whole reply's is the gateway's header when it sent one.
  const header = isStream ? Number.NaN : Number(response.headers.get("x-tiers-latency-ms"));
  answer.latencyMs = Number.isFinite(header) && header > 0 ? header : Math.round(measured);
  if (answer.ttftMs !== null) answer.ttftMs = Math.round(answer.ttftMs);
  onText(answer.content);
  return answer;
}

/** The console's closing `event: tiers` after `[DONE]`: its own timings, and the cost priced from
 * the usage chunk (a streamed miss's header cannot know it). */
interface Closing {
  latencyMs: number | null;
  ttftMs: number | null;
  costUsd: string | null;
  usage: { promptTokens?: number; completionTokens?: number } | null;
}

export function parseClosing(data: string): Closing | null {
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null) return null;
  const raw = body as { latencyMs?: unknown; ttftMs?: unknown; costUsd?: unknown; usage?: unknown };
  const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : null);
  const usage = raw.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
  return {
    latencyMs: num(raw.latencyMs),
    ttftMs: num(raw.ttftMs),
    costUsd: typeof raw.costUsd === "string" ? raw.costUsd : null,
    usage:
      usage && typeof usage === "object"
        ? {
            ...(typeof usage.prompt_tokens === "number" ? { promptTokens: usage.prompt_tokens } : {}),
            ...(typeof usage.completion_tokens === "number" ? { completionTokens: usage.completion_tokens } : {}),
          }
        : null,
  };
}

function merge(answer: Answer, delta: Delta): void {
  answer.content += delta.text;
  if (delta.promptTokens !== undefined) answer.promptTokens = delta.promptTokens;
  if (delta.completionTokens !== undefined) answer.completionTokens = delta.completionTokens;
  if (delta.costUsd !== undefined) answer.costUsd = delta.costUsd;
}

/** A cache hit is any label the gateway gives for an answer served without a model call. */
export function isCacheHit(cache: string): boolean {
  return cache === "hit" || cache === "semantic" || cache === "semantic-hit";
}
