import { expect, it } from "vitest";
import { age, bytes, costLabel, ms, percent, rate, usd } from "./format";

it("shows money from decimal strings with cents, or two significant places below a cent", () => {
  expect(usd("12.3456")).toBe("$12.35");
  expect(usd("0.001234")).toBe("$0.0012");
  expect(usd("0")).toBe("$0.00");
  expect(usd(null)).toBe("—");
});

it("names the window a cost covers", () => {
  expect(costLabel("5m")).toBe("Cost (5m)");
  expect(costLabel("run")).toBe("Cost (run)");
  expect(costLabel(null)).toBe("Cost");
});

it("shows latency in ms, and seconds from 10 s", () => {
  expect(ms(9.4)).toBe("9 ms");
  expect(ms(12345)).toBe("12.3 s");
  expect(ms(null)).toBe("—");
});

it("shows rates compactly", () => {
  expect(rate(2.25)).toBe("2.3/s");
  expect(rate(120.5)).toBe("121/s");
  expect(rate(27000)).toBe("27.0k/s");
});

it("bounds percentages and sizes", () => {
  expect(percent(5, 0)).toBe(0);
  expect(percent(1200, 2000)).toBe(60);
  expect(percent(3, 2)).toBe(100);
  expect(bytes(2048)).toBe("2.0 KiB");
});

it("says how old a time is", () => {
  const now = Date.parse("2026-01-01T01:00:00Z");
  expect(age("2026-01-01T00:59:30Z", now)).toBe("30s ago");
  expect(age("2026-01-01T00:00:00Z", now)).toBe("1h ago");
});
