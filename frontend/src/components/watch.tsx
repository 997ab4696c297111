/** One live watch for the whole console: the resource list from the backend, kept current by its
 * SSE watch; every page reads it from context. Events are applied in batches (every 100 ms) so the
 * initial burst of hundreds of upserts renders once, not hundreds of times. */
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { paths } from "../api/client";
import { follow } from "../api/sse";
import type { Summary } from "../api/types";
import { apply, type SummaryMap, type WatchEvent } from "../models/summaries";

export interface WatchState {
  summaries: SummaryMap;
  /** true once the first list arrived */
  loaded: boolean;
  connected: boolean;
  error: string | null;
  /** the backend refused the watch (401/403): it is not retried */
  refused: boolean;
}

const initial: WatchState = {
  summaries: new Map(),
  loaded: false,
  connected: false,
  error: null,
  refused: false,
};
const WatchContext = createContext<WatchState>(initial);

export function useWatch(): WatchState {
  return useContext(WatchContext);
}

export function WatchProvider({ namespace, children }: { namespace: string; children: ReactNode }) {
  const [state, setState] = useState<WatchState>(initial);
  useEffect(() => {
    setState(initial);
    let queue: WatchEvent[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      const events = queue;
      queue = [];
      setState((previous) => ({
        ...previous,
        loaded: true,
        summaries: events.reduce(apply, previous.summaries),
      }));
    };
    const subscription = follow(paths.watch(namespace || undefined), {
      onEvent: (event) => {
        if (event.event === "error") {
          // the backend's watch broke; it ends the stream and `follow` reconnects
          const message = parseMessage(event.data);
          setState((previous) => ({ ...previous, connected: false, error: message }));
          return;
        }
        if (event.event !== "upsert" && event.event !== "delete" && event.event !== "synced") return;
        let body: unknown;
        try {
          body = JSON.parse(event.data);
        } catch {
          return;
        }
        if (event.event === "synced") {
          const keys = (body as { keys?: unknown }).keys;
          if (!Array.isArray(keys)) return;
          queue.push({ type: "synced", keys: keys.filter((key): key is string => typeof key === "string") });
        } else {
          queue.push({ type: event.event, summary: body as Summary });
        }
        timer ??= setTimeout(flush, 100);
      },
      onState: ({ connected, error, refused = false }) =>
        setState((previous) => ({
          ...previous,
          connected,
          error,
          refused,
          // an empty namespace sends no upserts: the list has arrived once connected
          loaded: previous.loaded || connected,
        })),
    });
    return () => {
      subscription.close();
      if (timer) clearTimeout(timer);
    };
  }, [namespace]);
  return <WatchContext.Provider value={state}>{children}</WatchContext.Provider>;
}

function parseMessage(data: string): string {
  try {
    const body = JSON.parse(data) as { message?: unknown };
    if (typeof body.message === "string") return body.message;
  } catch {
    // not JSON: show it as it came
  }
  return data || "The watch broke";
}

/** For tests and stories: a fixed state without a backend. */
export function StaticWatch({ state, children }: { state: WatchState; children: ReactNode }) {
  return <WatchContext.Provider value={state}>{children}</WatchContext.Provider>;
}
