// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import Overview from "../pages/Overview";
import { many, summary } from "../testing/fixtures";
import { fromList } from "../models/summaries";
import { ErrorBoundary } from "./ErrorBoundary";
import { ResourceCard } from "./ResourceCard";
import { DataTable, ProgressBar, Segmented } from "./ui";
import { StaticWatch, type WatchState } from "./watch";

afterEach(cleanup);

function watching(state: Partial<WatchState>): WatchState {
  return { summaries: new Map(), loaded: true, connected: true, error: null, refused: false, ...state };
}

describe("ResourceCard", () => {
  it("shows status, p95, throughput and cost over its window, with links to details and to try it", () => {
    render(<ResourceCard summary={summary({ name: "chat" })} />);
    const card = screen.getByRole("article", { name: "chat" });
    expect(within(card).getByText("9 ms")).toBeTruthy();
    expect(within(card).getByText("121/s")).toBeTruthy();
    expect(within(card).getByText("$0.0012")).toBeTruthy();
    expect(within(card).getByText("Cost (5m)")).toBeTruthy();
    expect(within(card).getByRole("link", { name: "chat" }).getAttribute("href")).toBe(
      "#/k/realtimeendpoints/default/chat",
    );
    expect(within(card).getByRole("link", { name: "Open playground" }).getAttribute("href")).toBe(
      "#/playground/default/chat",
    );
  });

  it("makes a failing resource stand out with its reason and message", () => {
    render(<ResourceCard summary={summary({ ready: "False", reason: "Unavailable", message: "no backend answers" })} />);
    const card = screen.getByRole("article");
    expect(card.className).toContain("card-failed");
    expect(within(card).getByText("Failing")).toBeTruthy();
    expect(within(card).getByText("Unavailable")).toBeTruthy();
    expect(within(card).getByText("no backend answers")).toBeTruthy();
  });
});

describe("Overview", () => {
  it("lists failures first, counts them and filters by text", () => {
    render(
      <StaticWatch state={watching({ summaries: fromList(many(30)) })}>
        <Overview />
      </StaticWatch>,
    );
    const cards = screen.getAllByRole("article");
    expect(cards).toHaveLength(30);
    expect(cards[0]?.className).toContain("card-failed");
    expect(screen.getByText("3 failing")).toBeTruthy();
    fireEvent.change(screen.getByRole("searchbox", { name: "Filter resources" }), { target: { value: "r-02" } });
    return vi.waitFor(() => expect(screen.getAllByRole("article")).toHaveLength(10));
  });

  it("says how to add resources when there are none, and why updates stopped", () => {
    render(
      <StaticWatch state={watching({ connected: false, error: "The console backend cannot be reached" })}>
        <Overview />
      </StaticWatch>,
    );
    expect(screen.getByRole("alert").textContent).toContain("cannot be reached");
    expect(screen.getByText(/Apply one of the examples/)).toBeTruthy();
  });
});

describe("ErrorBoundary", () => {
  it("shows a view's error as a readable message instead of a blank page", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    function Broken(): never {
      throw new Error("series points missing");
    }
    render(
      <ErrorBoundary>
        <Broken />
      </ErrorBoundary>,
    );
    expect(screen.getByRole("alert").textContent).toContain("series points missing");
    expect(screen.getByRole("link", { name: "Back to the overview" })).toBeTruthy();
  });
});

describe("shared controls", () => {
  it("Segmented is a radio group that arrow keys move through", () => {
    const onChange = vi.fn();
    render(<Segmented label="Time range" options={["15m", "1h", "6h"] as const} value="1h" onChange={onChange} />);
    const checked = screen.getByRole("radio", { checked: true });
    expect(checked.textContent).toBe("1h");
    fireEvent.keyDown(checked, { key: "ArrowRight" });
    expect(onChange).toHaveBeenCalledWith("6h");
  });

  it("ProgressBar reports its value to assistive technology", () => {
    render(<ProgressBar value={40} label="Upload" />);
    expect(screen.getByRole("progressbar", { name: "Upload" }).getAttribute("aria-valuenow")).toBe("40");
  });

  it("DataTable says when it is empty", () => {
    render(<DataTable caption="Events" columns={[{ header: "Reason", cell: (row: string) => row }]} rows={[]} rowKey={(row) => row} empty="No events." />);
    expect(screen.getByText("No events.")).toBeTruthy();
  });
});
