import { describe, expect, it, vi } from "vitest";
import { follow, SseParser } from "./sse";

describe("SseParser", () => {
  it("yields an event only once its blank line arrives, across chunk boundaries", () => {
    const parser = new SseParser();
    expect(parser.feed("event: ups")).toEqual([]);
    expect(parser.feed('ert\ndata: {"a":')).toEqual([]);
    expect(parser.feed("1}\n\n")).toEqual([{ event: "upsert", data: '{"a":1}' }]);
  });

  it("joins data lines, skips comments and accepts CRLF", () => {
    const parser = new SseParser();
    const events = parser.feed(": ping\r\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n");
    expect(events).toEqual([
      { event: "message", data: "one\ntwo" },
      { event: "message", data: "[DONE]" },
    ]);
  });
});

function sseResponse(text: string): Response {
  return new Response(text, { headers: { "content-type": "text/event-stream" } });
}

describe("follow", () => {
  it("reconnects after the stream ends and reports the state", async () => {
    const fetch = vi
      .fn()
      .mockResolvedValueOnce(sseResponse("event: upsert\ndata: 1\n\n"))
      .mockRejectedValueOnce(new TypeError("network down"))
      .mockImplementation(() => Promise.resolve(sseResponse("event: upsert\ndata: 2\n\n")));
    vi.stubGlobal("fetch", fetch);
    const seen: string[] = [];
    const states: (string | null)[] = [];
    const subscription = follow(
      "/api/v1/watch",
      { onEvent: (event) => seen.push(event.data), onState: (state) => states.push(state.error) },
      { sleep: () => new Promise((resolve) => setTimeout(resolve, 1)) },
    );
    await vi.waitFor(() => expect(seen).toContain("2"));
    subscription.close();
    expect(seen[0]).toBe("1");
    expect(states.some((error) => error?.includes("cannot be reached"))).toBe(true);
  });
});

describe("follow, refused", () => {
  it("stops asking after a 403 and says it was refused", async () => {
    const refusal = {
      error: { message: "the caller may not list realtimeendpoints in all namespaces", reason: "Forbidden" },
    };
    const fetch = vi.fn().mockImplementation(() =>
      Promise.resolve(
        new Response(JSON.stringify(refusal), { status: 403, headers: { "content-type": "application/json" } }),
      ),
    );
    vi.stubGlobal("fetch", fetch);
    const states: { connected: boolean; error: string | null; refused?: boolean }[] = [];
    const subscription = follow(
      "/api/v1/watch",
      { onEvent: () => undefined, onState: (state) => states.push(state) },
      { sleep: () => new Promise((resolve) => setTimeout(resolve, 1)) },
    );
    await vi.waitFor(() => expect(states.length).toBeGreaterThan(0));
    await new Promise((resolve) => setTimeout(resolve, 20));
    subscription.close();
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(states).toEqual([{ connected: false, error: expect.stringContaining("may not list"), refused: true }]);
  });
});
