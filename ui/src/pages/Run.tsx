import { lazy, Suspense, useState } from "react";
import { call, path, type HistoryPage, type WorkflowStatus } from "../api";
import type { PinnedDag } from "../components/DagGraph";
import { StatusBadge } from "../components/StatusBadge";
import { Timeline } from "../components/Timeline";
import { usePolled, when } from "../poll";

const HISTORY_PAGE = 200;

// React Flow loads only for a DAG's run.
const DagGraph = lazy(() => import("../components/DagGraph"));

/** One workflow's latest run: its state, a timeline of its steps, its history, and the
 * signal, cancel and terminate buttons (each confirmed, each showing the gateway's answer). */
export function Run({ workflowId }: { workflowId: string }) {
  const status = usePolled(() => call<WorkflowStatus>("GET", `/workflows/${path(workflowId)}/status`), 2, [workflowId]);
  // The timeline is folded from the whole history on the owner: asked every 5 s while the run
  // is open, once more when it closes, then no more.
  const open = status.data?.status === "RUNNING";
  const history = usePolled(
    () => call<HistoryPage>("GET", `/workflows/${path(workflowId)}/history?timeline=true&limit=${HISTORY_PAGE}`),
    open ? 5 : 0,
    [workflowId, status.data?.runId, status.data?.status],
  );
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);
  const run = status.data;

  async function act(verb: "cancel" | "terminate" | "signal", body?: unknown) {
    if (verb !== "signal" && !confirm(`${verb[0].toUpperCase()}${verb.slice(1)} ${workflowId}?`)) return;
    try {
      await call("POST", `/workflows/${path(workflowId)}/${verb}`, body);
      setOutcome({ ok: true, text: `${verb}: accepted` });
      status.reload();
      history.reload();
    } catch (err) {
      setOutcome({ ok: false, text: `${verb}: ${(err as Error).message}` });
    }
  }

  return (
    <section aria-labelledby="run-title">
      <p>
        <a href="#/runs">← Runs</a>
      </p>
      <h1 id="run-title">{workflowId}</h1>
      {status.error && <p role="alert" className="error">{status.error.message}</p>}
      {history.error && !status.error && <p role="alert" className="error">history: {history.error.message}</p>}
      {run && (
        <>
          <dl className="facts">
            <dt>Status</dt>
            <dd data-testid="run-status">
              <StatusBadge status={run.status} />
              {run.cancelRequested && run.status === "RUNNING" && " (cancel requested)"}
            </dd>
            <dt>Type</dt>
            <dd>{run.workflowType}{run.isDag ? " (DAG)" : ""}</dd>
            <dt>Run id</dt>
            <dd><code>{run.runId}</code></dd>
            <dt>Started</dt>
            <dd>{when(run.startedAt)}</dd>
            <dt>Closed</dt>
            <dd>{when(run.closedAt)}</dd>
            <dt>Partition</dt>
            <dd>{run.partition}</dd>
            {run.previousRuns.length > 0 && (
              <>
                <dt>Earlier runs</dt>
                <dd>{run.previousRuns.map((id) => <code key={id}>{id} </code>)}</dd>
              </>
            )}
            {run.blocked && (
              <>
                <dt>Blocked</dt>
                <dd className="error">{run.blocked}</dd>
              </>
            )}
          </dl>
          <div className="actions" role="group" aria-label="Run actions">
            <SignalForm disabled={!open} onSend={(name, payload) => act("signal", { name, payload })} />
            <button type="button" disabled={!open} onClick={() => act("cancel")}>
              Cancel run
            </button>
            <button type="button" className="danger" disabled={!open} onClick={() => act("terminate")}>
              Terminate run
            </button>
          </div>
          {outcome && (
            <p role="status" className={outcome.ok ? "ok" : "error"}>
              {outcome.text}
            </p>
          )}
          {run.isDag && pinned(history.data) && history.data?.timeline && (
            <>
              <h2>Graph</h2>
              <Suspense fallback={<p>Loading the graph…</p>}>
                <DagGraph dag={pinned(history.data)!} timeline={history.data.timeline} />
              </Suspense>
            </>
          )}
          <h2>Timeline</h2>
          {history.data?.timeline && (
            <Timeline entries={history.data.timeline} startedAt={run.startedAt} closedAt={run.closedAt} />
          )}
          {run.pendingActivities.length > 0 && (
            <>
              <h2>Pending activities</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Seq</th>
                    <th scope="col">Activity</th>
                    <th scope="col">Attempt</th>
                    <th scope="col">State</th>
                    <th scope="col">Last failure</th>
                  </tr>
                </thead>
                <tbody>
                  {run.pendingActivities.map((a) => (
                    <tr key={a.seq}>
                      <td>{a.seq}</td>
                      <td>{a.activityType}</td>
                      <td>{a.attempt}</td>
                      <td>{a.state}</td>
                      <td>{a.lastFailure ?? "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
          <h2>Input and outcome</h2>
          <Json label="Input" value={run.input} />
          {run.result !== null && run.result !== undefined && <Json label="Result" value={run.result} />}
          {run.failure && <Json label="Failure" value={run.failure} />}
          <h2>History</h2>
          {history.data && (
            <p>
              {history.data.total} event(s){history.data.nextOffset !== null ? `, the first ${HISTORY_PAGE} shown` : ""}
            </p>
          )}
          <ol className="history">
            {history.data?.events.map((event, index) => (
              <li key={index}>
                <details>
                  <summary>
                    <span className="muted">{String(event.index)}</span>{" "}
                    <span className="event-type">{String(event.kind)}</span>{" "}
                    <span className="muted">{when(event.time as number)}</span>
                  </summary>
                  <pre>{JSON.stringify(event, null, 2)}</pre>
                </details>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}

/** The DAG a run executes, as its start pinned it (the first history event). */
function pinned(page: HistoryPage | null): PinnedDag | null {
  const first = page?.events[0];
  return first?.kind === "workflow_started" && first.dag ? (first.dag as PinnedDag) : null;
}

function Json({ label, value }: { label: string; value: unknown }) {
  return (
    <details open>
      <summary>{label}</summary>
      <pre>{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}

function SignalForm({ disabled, onSend }: { disabled: boolean; onSend: (name: string, payload: unknown) => void }) {
  const [name, setName] = useState("");
  const [payload, setPayload] = useState("");
  const [problem, setProblem] = useState("");
  return (
    <form
      className="signal"
      onSubmit={(event) => {
        event.preventDefault();
        let value: unknown = null;
        if (payload.trim()) {
          try {
            value = JSON.parse(payload);
          } catch {
            setProblem("the payload is not JSON");
            return;
          }
        }
        setProblem("");
        onSend(name.trim(), value);
      }}
    >
      <label>
        Signal
        <input value={name} onChange={(e) => setName(e.target.value)} required disabled={disabled} />
      </label>
      <label>
        Payload (JSON)
        <input value={payload} onChange={(e) => setPayload(e.target.value)} disabled={disabled} />
      </label>
      <button type="submit" disabled={disabled || !name.trim()}>
        Send signal
      </button>
      {problem && <span role="alert" className="error">{problem}</span>}
    </form>
  );
}
