/** The console's routes, in the URL's hash (the backend serves one index.html for every path):
 * parse and build, so links and the router agree. */
import type { Plural } from "../api/types";
import { kindInfo } from "./kinds";

export type Route =
  | { page: "overview" }
  | { page: "list"; plural: Plural }
  | { page: "detail"; plural: Plural; ns: string; name: string }
  | { page: "playground"; ns?: string; name?: string }
  | { page: "stream"; ns?: string; name?: string }
  | { page: "batch"; ns?: string; name?: string }
  | { page: "notFound"; path: string };

export function parse(hash: string): Route {
  const path = hash.replace(/^#/, "");
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((part) => decodeURIComponent(part));
  const [head, a, b, c] = parts;
  if (parts.length === 0) return { page: "overview" };
  if (head === "k" && a && kindInfo(a)) {
    const plural = a as Plural;
    if (parts.length === 2) return { page: "list", plural };
    if (parts.length === 4 && b && c) return { page: "detail", plural, ns: b, name: c };
  }
  if ((head === "playground" || head === "stream" || head === "batch") && parts.length <= 3) {
    if (a && b) return { page: head, ns: a, name: b };
    if (!a) return { page: head };
  }
  return { page: "notFound", path };
}

const seg = encodeURIComponent;

export function href(route: Route): string {
  switch (route.page) {
    case "overview":
      return "#/";
    case "list":
      return `#/k/${route.plural}`;
    case "detail":
      return `#/k/${route.plural}/${seg(route.ns)}/${seg(route.name)}`;
    case "playground":
    case "stream":
    case "batch":
      return route.ns && route.name
        ? `#/${route.page}/${seg(route.ns)}/${seg(route.name)}`
        : `#/${route.page}`;
    case "notFound":
      return `#/${route.path}`;
  }
}
