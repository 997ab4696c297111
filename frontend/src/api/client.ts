/** HTTP to the console backend: one place that adds the caller's token and turns any failure into
 * an ApiError whose message a person can read (the backend's `{"error": {"message"}}` when it sent one). */
import type { Detail, Estimate, Plural, Range, Series, Summary } from "./types";

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(message: string, { status = 0, reason = "" }: { status?: number; reason?: string } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.reason = reason;
  }
}

const TOKEN_KEY = "tiers.console.token";

export function token(): string {
  try {
    return globalThis.localStorage?.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setToken(value: string): void {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(): Record<string, string> {
  const bearer = token();
  return bearer ? { Authorization: `Bearer ${bearer}` } : {};
}

/** The readable message of a failed response: the contract's error body, else the status line. */
export async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let reason = "";
  try {
    const body: unknown = await response.json();
    const error = (body as { error?: { message?: unknown; reason?: unknown } } | null)?.error;
    if (error && typeof error.message === "string") message = error.message;
    if (error && typeof error.reason === "string") reason = error.reason;
    else if (typeof (body as { detail?: unknown })?.detail === "string") {
      message = (body as { detail: string }).detail;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) message = `Not signed in: ${message}. Give a token in the header bar.`;
  return new ApiError(message, { status: response.status, reason });
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: { ...authHeaders(), ...init.headers } });
  } catch (error) {
    throw new ApiError(`The console backend cannot be reached (${String(error)})`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await request(path, init);
  return (await response.json()) as T;
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  const response = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await response.json()) as T;
}

const seg = encodeURIComponent;

export const paths = {
  namespaces: () => "/api/v1/namespaces",
  resources: (namespace?: string) =>
    namespace ? `/api/v1/resources?namespace=${seg(namespace)}` : "/api/v1/resources",
  watch: (namespace?: string) =>
    namespace ? `/api/v1/watch?namespace=${seg(namespace)}` : "/api/v1/watch",
  detail: (plural: Plural, ns: string, name: string) =>
    `/api/v1/resources/${plural}/${seg(ns)}/${seg(name)}`,
  series: (plural: Plural, ns: string, name: string, range: Range) =>
    `/api/v1/resources/${plural}/${seg(ns)}/${seg(name)}/series?range=${range}`,
  chat: (ns: string, name: string) => `/api/v1/realtime/${seg(ns)}/${seg(name)}/chat/completions`,
  live: (ns: string, name: string) => `/api/v1/stream/${seg(ns)}/${seg(name)}/live`,
  events: (ns: string, name: string) => `/api/v1/stream/${seg(ns)}/${seg(name)}/events`,
  deadLetters: (ns: string, name: string, limit = 20) =>
    `/api/v1/stream/${seg(ns)}/${seg(name)}/deadletters?limit=${limit}`,
  batchInput: (ns: string, name: string) => `/api/v1/batch/${seg(ns)}/${seg(name)}/input`,
  estimate: (ns: string, name: string) => `/api/v1/batch/${seg(ns)}/${seg(name)}/estimate`,
  start: (ns: string, name: string) => `/api/v1/batch/${seg(ns)}/${seg(name)}/start`,
  results: (ns: string, name: string, file: "output" | "errors") =>
    `/api/v1/batch/${seg(ns)}/${seg(name)}/results?file=${file}`,
};

export const api = {
  namespaces: () => getJson<{ items: string[] }>(paths.namespaces()).then((body) => body.items),
  resources: (namespace?: string) =>
    getJson<{ items: Summary[] }>(paths.resources(namespace)).then((body) => body.items),
  detail: (plural: Plural, ns: string, name: string) => getJson<Detail>(paths.detail(plural, ns, name)),
  series: (plural: Plural, ns: string, name: string, range: Range) =>
    getJson<Series>(paths.series(plural, ns, name, range)),
  estimate: (ns: string, name: string) => getJson<Estimate>(paths.estimate(ns, name)),
  start: (ns: string, name: string) => postJson<unknown>(paths.start(ns, name), {}),
  sendEvents: (ns: string, name: string, events: Record<string, unknown>[]) =>
    postJson<{ sent: number }>(paths.events(ns, name), { events }),
  sendPoison: (ns: string, name: string) =>
    postJson<{ sent: number }>(paths.events(ns, name), { poison: true }),
  deadLetters: (ns: string, name: string) => getJson<unknown>(paths.deadLetters(ns, name)),
};
