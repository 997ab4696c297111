/** A kind's list: the CRD's printer columns as the backend reports them, plus status and a link to
 * each resource's detail page. Configuration of the shared DataTable. */
import { useMemo } from "react";
import type { Plural, Summary } from "../api/types";
import { DataTable, ErrorMessage, Loading, StatusBadge, type Column } from "../components/ui";
import { useWatch } from "../components/watch";
import { age } from "../models/format";
import { kindInfo } from "../models/kinds";
import { href } from "../models/route";
import { columnNames, ordered } from "../models/summaries";

export default function ResourceList({ plural }: { plural: Plural }) {
  const { summaries, loaded, error, connected } = useWatch();
  const info = kindInfo(plural);
  const rows = useMemo(() => ordered(summaries, plural), [summaries, plural]);
  const columns = useMemo<Column<Summary>[]>(() => {
    const printer = columnNames(rows).filter((name) => name !== "Age");
    return [
      {
        header: "Name",
        cell: (row) => (
          <a href={href({ page: "detail", plural, ns: row.namespace, name: row.name })}>{row.name}</a>
        ),
      },
      { header: "Namespace", cell: (row) => row.namespace },
      { header: "Status", cell: (row) => <StatusBadge summary={row} /> },
      ...printer.map((name) => ({ header: name, cell: (row: Summary) => row.columns[name] ?? "" })),
      { header: "Age", cell: (row) => age(row.createdAt) },
    ];
  }, [rows, plural]);
  return (
    <div className="page">
      <div className="page-head">
        <h1>{info?.title ?? plural}</h1>
        <p className="muted">
          kubectl get {info?.short ?? plural} · {rows.length} shown
        </p>
      </div>
      {error && !connected ? <ErrorMessage title="Live updates interrupted" error={error} /> : null}
      {loaded ? (
        <DataTable
          caption={info?.title ?? plural}
          columns={columns}
          rows={rows}
          rowKey={(row) => `${row.namespace}/${row.name}`}
          empty={`No ${info?.title.toLowerCase() ?? plural} in this namespace.`}
        />
      ) : (
        <Loading what={info?.title.toLowerCase() ?? plural} />
      )}
    </div>
  );
}
