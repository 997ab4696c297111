/** The console's frame: navigation, namespace and token, the one live watch, and the current page
 * (each page its own lazily loaded chunk) inside an error boundary. */
import { lazy, Suspense, useState, type ReactNode } from "react";
import { api, setToken, token } from "./api/client";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { useAsync, useRoute } from "./components/hooks";
import { ErrorMessage, Loading } from "./components/ui";
import { useWatch, WatchProvider } from "./components/watch";
import { KINDS } from "./models/kinds";
import { href, type Route } from "./models/route";
import Overview from "./pages/Overview";

const ResourceList = lazy(() => import("./pages/ResourceList"));
const ResourceDetail = lazy(() => import("./pages/ResourceDetail"));
const Playground = lazy(() => import("./pages/Playground"));
const StreamLive = lazy(() => import("./pages/StreamLive"));
const Batch = lazy(() => import("./pages/Batch"));

const NAMESPACE_KEY = "tiers.console.namespace";

function page(route: Route): ReactNode {
  switch (route.page) {
    case "overview":
      return <Overview />;
    case "list":
      return <ResourceList plural={route.plural} />;
    case "detail":
      return <ResourceDetail plural={route.plural} ns={route.ns} name={route.name} />;
    case "playground":
      return <Playground ns={route.ns} name={route.name} />;
    case "stream":
      return <StreamLive ns={route.ns} name={route.name} />;
    case "batch":
      return <Batch ns={route.ns} name={route.name} />;
    case "notFound":
      return <ErrorMessage title="No such page" error={`#/${route.path} is not a page of the console`} />;
  }
}

function current(route: Route, target: Route["page"], plural?: string): boolean {
  if (route.page !== target) return false;
  return plural === undefined || ("plural" in route && route.plural === plural);
}

function LiveIndicator() {
  const { connected, error, refused } = useWatch();
  return (
    <span className={connected ? "live live-on" : "live live-off"} role="status" title={error ?? "watching"}>
      <span aria-hidden="true" className="dot" />
      {connected ? "Live" : refused ? "Not allowed" : "Reconnecting"}
    </span>
  );
}

function NamespaceSelect({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  const namespaces = useAsync(api.namespaces, "namespaces", 30000);
  const options = namespaces.data ?? [];
  return (
    <label className="ns">
      <span className="sr-only">Namespace</span>
      <select value={value} onChange={(event) => onChange(event.target.value)}>
        <option value="">All namespaces</option>
        {value && !options.includes(value) ? <option value={value}>{value}</option> : null}
        {options.map((ns) => (
          <option key={ns} value={ns}>
            {ns}
          </option>
        ))}
      </select>
    </label>
  );
}

function TokenField() {
  const [value, setValue] = useState(token);
  const [editing, setEditing] = useState(false);
  if (!editing) {
    return (
      <button type="button" className="link-button" onClick={() => setEditing(true)}>
        {value ? "Token set" : "Sign in with a token"}
      </button>
    );
  }
  return (
    <form
      className="token"
      onSubmit={(event) => {
        event.preventDefault();
        setToken(value.trim());
        setEditing(false);
        window.location.reload();
      }}
    >
      <label>
        <span className="sr-only">Bearer token</span>
        <input
          type="password"
          autoComplete="off"
          placeholder="Kubernetes bearer token"
          value={value}
          onChange={(event) => setValue(event.target.value)}
        />
      </label>
      <button type="submit">Use</button>
    </form>
  );
}

export default function App() {
  const route = useRoute();
  const [namespace, setNamespace] = useState(() => localStorage.getItem(NAMESPACE_KEY) ?? "");
  const routeKey = window.location.hash;
  return (
    <WatchProvider namespace={namespace}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="#/">
          Tiers
        </a>
        <nav aria-label="Pages">
          <ul>
            <li>
              <a href={href({ page: "overview" })} aria-current={current(route, "overview") ? "page" : undefined}>
                Overview
              </a>
            </li>
            {KINDS.map((info) => (
              <li key={info.plural}>
                <a
                  href={href({ page: "list", plural: info.plural })}
                  aria-current={
                    current(route, "list", info.plural) || current(route, "detail", info.plural) ? "page" : undefined
                  }
                >
                  {info.title}
                </a>
              </li>
            ))}
            <li>
              <a href={href({ page: "playground" })} aria-current={current(route, "playground") ? "page" : undefined}>
                Playground
              </a>
            </li>
            <li>
              <a href={href({ page: "stream" })} aria-current={current(route, "stream") ? "page" : undefined}>
                Live stream
              </a>
            </li>
            <li>
              <a href={href({ page: "batch" })} aria-current={current(route, "batch") ? "page" : undefined}>
                Batch
              </a>
            </li>
          </ul>
        </nav>
        <div className="topbar-tools">
          <NamespaceSelect
            value={namespace}
            onChange={(value) => {
              setNamespace(value);
              localStorage.setItem(NAMESPACE_KEY, value);
            }}
          />
          <LiveIndicator />
          <TokenField />
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBoundary resetKey={routeKey}>
          <Suspense fallback={<Loading what="the page" />}>{page(route)}</Suspense>
        </ErrorBoundary>
      </main>
    </WatchProvider>
  );
}
