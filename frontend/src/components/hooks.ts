/** Small hooks the views share: the current route, an async value with its error, a ticking clock. */
import { useCallback, useEffect, useRef, useState } from "react";
import { parse, type Route } from "../models/route";

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parse(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

export interface Async<T> {
  data: T | undefined;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `key` changes (and on reload, or every `refreshMs`), keeping the last data while
 * a new load is on its way; an answer to an older key is dropped. */
export function useAsync<T>(load: () => Promise<T>, key: string, refreshMs = 0): Async<T> {
  const [state, setState] = useState<{ data: T | undefined; error: Error | null; loading: boolean }>({
    data: undefined,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    let current = true;
    setState((previous) => ({ ...previous, loading: true }));
    loader.current().then(
      (data) => current && setState({ data, error: null, loading: false }),
      (error: unknown) =>
        current &&
        setState((previous) => ({
          data: previous.data,
          error: error instanceof Error ? error : new Error(String(error)),
          loading: false,
        })),
    );
    return () => {
      current = false;
    };
  }, [key, tick]);
  useEffect(() => {
    if (refreshMs <= 0) return;
    const timer = setInterval(() => setTick((t) => t + 1), refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs, key]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Shows a long list a page at a time: the first `step` items, and `step` more each time the
 * returned sentinel scrolls into view. A new list starts again from the first page, so a
 * keystroke in a filter never renders hundreds of items at once. Without IntersectionObserver
 * (tests, old browsers) everything is shown. */
export function useIncremental<T>(items: readonly T[], step = 24): {
  shown: readonly T[];
  sentinel: (element: HTMLElement | null) => void;
} {
  const [limit, setLimit] = useState(step);
  const [source, setSource] = useState(items);
  if (source !== items) {
    setSource(items);
    setLimit(step);
  }
  const observer = useRef<IntersectionObserver | null>(null);
  const sentinel = useCallback(
    (element: HTMLElement | null) => {
      observer.current?.disconnect();
      if (!element || typeof IntersectionObserver === "undefined") return;
      observer.current = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) setLimit((current) => current + step);
      });
      observer.current.observe(element);
    },
    [step],
  );
  const all = typeof IntersectionObserver === "undefined";
  return { shown: all ? items : items.slice(0, limit), sentinel };
}

/** `value` once it has stopped changing for `ms`: a filter box paints each keystroke at once and
 * filters when the typing pauses. */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}
