/** Choosing which resource a try-it page drives: a select of that kind's resources from the watch. */
import type { Plural } from "../api/types";
import { href } from "../models/route";
import { ordered } from "../models/summaries";
import { StatusBadge } from "./ui";
import { useWatch } from "./watch";

export function PickResource({
  plural,
  page,
  ns,
  name,
}: {
  plural: Plural;
  page: "playground" | "stream" | "batch";
  ns?: string | undefined;
  name?: string | undefined;
}) {
  const { summaries } = useWatch();
  const items = ordered(summaries, plural);
  const value = ns && name ? `${ns}/${name}` : "";
  const chosen = items.find((item) => `${item.namespace}/${item.name}` === value);
  return (
    <div className="picker">
      <label>
        Resource{" "}
        <select
          value={value}
          onChange={(event) => {
            const [nextNs, nextName] = event.target.value.split("/");
            window.location.hash = href(
              nextNs && nextName ? { page, ns: nextNs, name: nextName } : { page },
            ).slice(1);
          }}
        >
          <option value="">Choose…</option>
          {value && !chosen ? <option value={value}>{value}</option> : null}
          {items.map((item) => (
            <option key={`${item.namespace}/${item.name}`} value={`${item.namespace}/${item.name}`}>
              {item.namespace}/{item.name}
            </option>
          ))}
        </select>
      </label>
      {chosen ? <StatusBadge summary={chosen} /> : null}
      {chosen ? (
        <a href={href({ page: "detail", plural, ns: chosen.namespace, name: chosen.name })}>Details</a>
      ) : null}
    </div>
  );
}
