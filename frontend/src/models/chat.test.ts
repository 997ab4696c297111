import { describe, expect, it, vi } from "vitest";
import { isCacheHit, parseChunk, sendChat } from "./chat";

describe("parseChunk", () => {
  it("reads a delta's text and the final usage chunk", () => {
    expect(parseChunk('{"choices":[{"delta":{"content":"Hel"}}]}')).toEqual({ text: "Hel" });
    expect(parseChunk('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}')).toEqual({
      text: "",
      promptTokens: 5,
      completionTokens: 7,
    });
    expect(parseChunk("[DONE]")).toBe("done");
    expect(parseChunk("not json")).toBeNull();
  });
});

function streamOf(chunks: string[], headers: Record<string, string>): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream", ...headers } });
}

describe("sendChat", () => {
  it("streams the text and takes cost and timings from the console's closing event", async () => {
    const fetch = vi.fn().mockResolvedValue(
      streamOf(
        [
          'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n',
          'data: {"choices":[{"delta":{"content":" there"}}]}\n\n',
          'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
          "data: [DONE]\n\n",
          'event: tiers\ndata: {"latencyMs":812,"ttftMs":95,"costUsd":"0.000042","usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
        ],
        { "x-tiers-cache": "miss", "x-tiers-cost-usd": "0.000000" },
      ),
    );
    vi.stubGlobal("fetch", fetch);
    let t = 0;
    const clock = { now: () => (t += 10) };
    const partials: string[] = [];
    const answer = await sendChat("default", "chat", [{ role: "user", content: "hi" }], {
      onText: (text) => partials.push(text),
      clock,
    });
    expect(answer.content).toBe("Hello there");
    expect(partials).toContain("Hello");
    expect(answer.cache).toBe("miss");
    expect(answer.costUsd).toBe("0.000042");
    expect(answer.ttftMs).toBe(95);
    expect(answer.latencyMs).toBe(812);
    expect(answer.completionTokens).toBe(2);
    const [url, init] = fetch.mock.calls[0] as [string, RequestInit];
    expect(url).toBe("/api/v1/realtime/default/chat/chat/completions");
    expect(JSON.parse(init.body as string)).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("measures the timings itself and takes the header's cost without a closing event", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn().mockResolvedValue(
        streamOf(['data: {"choices":[{"delta":{"content":"cached"}}]}\n\ndata: [DONE]\n\n'], {
          "x-tiers-cache": "hit",
          "x-tiers-cost-usd": "0.000000",
        }),
      ),
    );
    let t = 0;
    const answer = await sendChat("default", "chat", [{ role: "user", content: "hi" }], {
      clock: { now: () => (t += 10) },
    });
    expect(answer.ttftMs).toBe(10);
    expect(answer.latencyMs).toBe(20);
    expect(isCacheHit(answer.cache)).toBe(true);
    expect(answer.costUsd).toBe("0.000000");
  });

  it("rejects with the endpoint's OpenAI-style error message", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn().mockResolvedValue(
        new Response(JSON.stringify({ error: { message: "budget spent", type: "budget" } }), { status: 429 }),
      ),
    );
    await expect(sendChat("default", "chat", [{ role: "user", content: "hi" }])).rejects.toThrow("budget spent");
  });
});
