/** How numbers read on the page: one function per unit, so every card, table and chart agrees. */

const DASH = "—";

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  if (value >= 10000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.round(value)} ms`;
}

export function rate(value: number | null | undefined, unit = "/s"): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k${unit}`;
  if (value >= 10) return `${value.toFixed(0)}${unit}`;
  return `${value.toFixed(1)}${unit}`;
}

/** Money arrives as a decimal string; shown with cents, or with 4 significant places below a cent. */
export function usd(value: string | null | undefined): string {
  if (value === null || value === undefined || value === "") return DASH;
  const amount = Number(value);
  if (!Number.isFinite(amount)) return DASH;
  if (amount === 0) return "$0.00";
  if (Math.abs(amount) < 0.01) return `$${amount.toPrecision(2)}`;
  return `$${amount.toFixed(2)}`;
}

/** "Cost (5m)", "Cost (run)": what a cost figure covers. */
export function costLabel(window: string | null | undefined): string {
  return window ? `Cost (${window})` : "Cost";
}

export function percent(done: number, total: number): number {
  if (total <= 0) return 0;
  return Math.max(0, Math.min(100, Math.round((done / total) * 100)));
}

export function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

/** "12s ago", "3m ago": how old a timestamp is relative to `now`. */
export function age(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return DASH;
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return DASH;
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}
