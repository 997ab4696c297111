// @vitest-environment jsdom
import { describe, expect, it, vi } from "vitest";
import { ApiError, getJson, paths, setToken } from "./client";

describe("getJson", () => {
  it("turns the contract's error body into the message a person reads", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn().mockResolvedValue(
        new Response(JSON.stringify({ error: { message: "batchjobs default/x not found", reason: "NotFound" } }), {
          status: 404,
        }),
      ),
    );
    const error = await getJson("/api/v1/resources/batchjobs/default/x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).message).toBe("batchjobs default/x not found");
    expect((error as ApiError).reason).toBe("NotFound");
    expect((error as ApiError).status).toBe(404);
  });

  it("says the backend cannot be reached when the network fails", async () => {
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    await expect(getJson("/api/v1/namespaces")).rejects.toThrow(/cannot be reached/);
  });

  it("asks for a token on 401", async () => {
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response("{}", { status: 401, statusText: "Unauthorized" })));
    await expect(getJson("/api/v1/resources")).rejects.toThrow(/Give a token/);
  });

  it("sends the token the user gave as a bearer token", async () => {
    const fetch = vi.fn().mockResolvedValue(new Response('{"items": []}'));
    vi.stubGlobal("fetch", fetch);
    setToken("abc");
    await getJson(paths.resources("team a"));
    setToken("");
    const [url, init] = fetch.mock.calls[0] as [string, RequestInit];
    expect(url).toBe("/api/v1/resources?namespace=team%20a");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer abc");
  });
});
