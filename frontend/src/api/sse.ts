/** Server-sent events over fetch (EventSource cannot send the caller's Authorization header):
 * a parser fed text chunks, and a reader that drives it from a Response body. */
import { ApiError, request } from "./client";

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Splits a text stream into events per the SSE spec: blank line ends an event, `data` lines join
 * with newlines, comment lines (`:`) are skipped, `event` defaults to "message". */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;

  feed(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === "") {
        if (this.data.length > 0) {
          const event: SseEvent = { event: this.event || "message", data: this.data.join("\n") };
          if (this.id !== undefined) event.id = this.id;
          out.push(event);
        }
        this.data = [];
        this.event = "";
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

/** Reads `response`'s body as SSE, calling `onEvent` for each event until the stream ends. */
export async function readSse(
  response: Response,
  onEvent: (event: SseEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (!response.body) throw new ApiError("The server sent no body to stream");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.feed(value)) onEvent(event);
    }
  } finally {
    reader.releaseLock();
  }
}

export interface Subscription {
  close(): void;
}

/** Follows an SSE endpoint for as long as the page wants it: reconnects with backoff (1 s doubling
 * to 15 s) and reports whether it is connected, so a view can say "live" or "reconnecting". A
 * refusal (401, 403) is not retried: asking again changes nothing until the caller signs in or
 * picks what they may read, which makes a new subscription; it is reported as `refused`. */
export function follow(
  path: string,
  handlers: {
    onEvent: (event: SseEvent) => void;
    onState?: (state: { connected: boolean; error: string | null; refused?: boolean }) => void;
  },
  { sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) } = {},
): Subscription {
  const controller = new AbortController();
  void (async () => {
    let delay = 1000;
    while (!controller.signal.aborted) {
      try {
        const response = await request(path, {
          signal: controller.signal,
          headers: { Accept: "text/event-stream" },
        });
        handlers.onState?.({ connected: true, error: null });
        delay = 1000;
        await readSse(response, handlers.onEvent, controller.signal);
        if (!controller.signal.aborted) {
          handlers.onState?.({ connected: false, error: "The live stream ended; reconnecting" });
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        const refused = error instanceof ApiError && (error.status === 401 || error.status === 403);
        handlers.onState?.({ connected: false, error: (error as Error).message, refused });
        if (refused) return;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return { close: () => controller.abort() };
}
