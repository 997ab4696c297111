import { expect, it } from "vitest";
import { href, parse, type Route } from "./route";

it("parses every page and builds the same hash back", () => {
  const routes: Route[] = [
    { page: "overview" },
    { page: "list", plural: "streampipelines" },
    { page: "detail", plural: "batchjobs", ns: "team a", name: "nightly" },
    { page: "playground", ns: "default", name: "chat" },
    { page: "stream" },
  ];
  for (const route of routes) expect(parse(href(route))).toEqual(route);
});

it("names an unknown path as not found", () => {
  expect(parse("#/k/pods")).toEqual({ page: "notFound", path: "/k/pods" });
});
