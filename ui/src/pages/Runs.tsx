import { useState } from "react";
import { call, STATUSES, type WorkflowList } from "../api";
import { Pager, usePages } from "../components/Pager";
import { StatusBadge } from "../components/StatusBadge";
import { usePolled, when } from "../poll";
import { runHref } from "../route";

/** Every workflow's latest run, filtered by status, type or a visibility query, paged, live. */
export function Runs() {
  const [status, setStatus] = useState("");
  const [type, setType] = useState("");
  const [query, setQuery] = useState("");
  const [applied, setApplied] = useState({ status: "", type: "", query: "" });
  const pages = usePages();
  const cursor = pages.cursor;
  const { data, error } = usePolled(
    () => {
      const params = new URLSearchParams({ limit: "50" });
      if (applied.query) params.set("query", applied.query);
      else {
        if (applied.status) params.set("status", applied.status);
        if (applied.type) params.set("type", applied.type);
      }
      if (cursor) params.set("cursor", cursor);
      return call<WorkflowList>("GET", `/workflows?${params}`);
    },
    3,
    [applied, cursor],
  );
  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      <form
        className="filters"
        onSubmit={(event) => {
          event.preventDefault();
          setApplied({ status, type: type.trim(), query: query.trim() });
          pages.reset();
        }}
      >
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)} disabled={!!query.trim()}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Type
          <input value={type} onChange={(e) => setType(e.target.value)} disabled={!!query.trim()} />
        </label>
        <label className="wide">
          Query
          <input
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            placeholder="WorkflowType = 'Checkout' AND ExecutionStatus = 'Running'"
          />
        </label>
        <button type="submit">Filter</button>
      </form>
      {error && <p role="alert" className="error">{error.message}</p>}
      {data?.partial && (
        <p role="status" className="warning">
          Partitions {data.missingPartitions.join(", ")} had no reachable owner: the list is partial.
        </p>
      )}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Workflow id</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Started</th>
              <th scope="col">Closed</th>
              <th scope="col">Events</th>
            </tr>
          </thead>
          <tbody>
            {data?.workflows.map((run) => (
              <tr key={run.workflowId}>
                <td>
                  <a href={runHref(run.workflowId)}>{run.workflowId}</a>
                </td>
                <td>{run.workflowType}</td>
                <td>
                  <StatusBadge status={run.status} />
                </td>
                <td>{when(run.startedAt)}</td>
                <td>{when(run.closedAt)}</td>
                <td>{run.historyLength}</td>
              </tr>
            ))}
            {data && data.workflows.length === 0 && (
              <tr>
                <td colSpan={6}>No runs on this page.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager label="Pages of runs" pages={pages} next={data?.nextCursor} />
    </section>
  );
}
