import { useState } from "react";
import { call, path } from "../api";
import { usePolled } from "../poll";

interface ScheduleRow {
  scheduleId: string;
  workflowType: string;
  paused: boolean;
  note: string;
  nextFireTime: string | null;
  actions: number;
  running: number;
}

interface ScheduleList {
  schedules: ScheduleRow[];
  nextPageToken: string | null;
}

/** Every schedule with its next fire time; pause, unpause and trigger, each confirmed by its answer. */
export function Schedules() {
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const after = pages[pages.length - 1];
  const list = usePolled(
    () => call<ScheduleList>("GET", `/schedules?limit=50${after ? `&after=${encodeURIComponent(after)}` : ""}`),
    5,
    [after],
  );
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);

  async function act(id: string, verb: "pause" | "unpause" | "trigger") {
    try {
      await call("POST", `/schedules/${path(id)}/${verb}`, verb === "trigger" ? {} : { note: `${verb}d from the web UI` });
      setOutcome({ ok: true, text: `${id}: ${verb} done` });
      list.reload();
    } catch (err) {
      setOutcome({ ok: false, text: `${id}: ${verb} refused: ${(err as Error).message}` });
    }
  }

  return (
    <section aria-labelledby="schedules-title">
      <h1 id="schedules-title">Schedules</h1>
      {list.error && <p role="alert" className="error">{list.error.message}</p>}
      {outcome && (
        <p role="status" className={outcome.ok ? "ok" : "error"}>
          {outcome.text}
        </p>
      )}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Schedule</th>
              <th scope="col">Starts</th>
              <th scope="col">State</th>
              <th scope="col">Next fire</th>
              <th scope="col">Runs started</th>
              <th scope="col">Open</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.schedules.map((s) => (
              <tr key={s.scheduleId} data-testid={`schedule-${s.scheduleId}`}>
                <td>{s.scheduleId}</td>
                <td>{s.workflowType}</td>
                <td data-testid="schedule-state">
                  {s.paused ? "paused" : "active"}
                  {s.note ? ` (${s.note})` : ""}
                </td>
                <td>{s.nextFireTime ? new Date(s.nextFireTime).toLocaleString() : "—"}</td>
                <td data-testid="schedule-actions">{s.actions}</td>
                <td>{s.running}</td>
                <td className="row-actions">
                  {s.paused ? (
                    <button type="button" onClick={() => act(s.scheduleId, "unpause")}>
                      Unpause <span className="visually-hidden">{s.scheduleId}</span>
                    </button>
                  ) : (
                    <button type="button" onClick={() => act(s.scheduleId, "pause")}>
                      Pause <span className="visually-hidden">{s.scheduleId}</span>
                    </button>
                  )}
                  <button type="button" onClick={() => act(s.scheduleId, "trigger")}>
                    Trigger <span className="visually-hidden">{s.scheduleId}</span>
                  </button>
                </td>
              </tr>
            ))}
            {list.data && list.data.schedules.length === 0 && (
              <tr>
                <td colSpan={7}>No schedules.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages of schedules">
        <button type="button" disabled={pages.length < 2} onClick={() => setPages(pages.slice(0, -1))}>
          Previous
        </button>
        <button
          type="button"
          disabled={!list.data?.nextPageToken}
          onClick={() => list.data?.nextPageToken && setPages([...pages, list.data.nextPageToken])}
        >
          Next
        </button>
      </nav>
    </section>
  );
}
