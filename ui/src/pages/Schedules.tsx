import { useState } from "react";
import { call, path } from "../api";
import { Pager, usePages } from "../components/Pager";
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
  const pages = usePages();
  const after = pages.cursor;
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
      <CreateSchedule onCreated={list.reload} />
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
      <Pager label="Pages of schedules" pages={pages} next={list.data?.nextPageToken} />
    </section>
  );
}

/** The gateway's schedule description (snake_case, as on Kafka). */
interface Described {
  schedule_id: string;
  info: { next_fire_times: string[] };
}

/** A schedule from a form: what it starts, on which cron expression and time zone; once the
 * gateway created it, its next fire times. */
function CreateSchedule({ onCreated }: { onCreated: () => void }) {
  const [id, setId] = useState("");
  const [type, setType] = useState("");
  const [cron, setCron] = useState("0 * * * *");
  const [zone, setZone] = useState("UTC");
  const [input, setInput] = useState("null");
  const [paused, setPaused] = useState(false);
  const [answer, setAnswer] = useState<{ ok: boolean; text: string; fires?: string[] } | null>(null);

  async function create() {
    let parsed: unknown;
    try {
      parsed = JSON.parse(input || "null");
    } catch {
      setAnswer({ ok: false, text: "the input is not JSON" });
      return;
    }
    const body = {
      scheduleId: id.trim(),
      schedule: {
        action: { workflow_type: type.trim(), input: parsed },
        spec: { cron_expressions: [cron.trim()], time_zone: zone.trim() || "UTC" },
        state: { paused },
      },
    };
    try {
      const described = await call<Described>("POST", "/schedules", body);
      setAnswer({ ok: true, text: `created ${described.schedule_id}; next fire times:`, fires: described.info.next_fire_times });
      onCreated();
    } catch (err) {
      setAnswer({ ok: false, text: `not created: ${(err as Error).message}` });
    }
  }

  return (
    <details className="create">
      <summary>New schedule</summary>
      <form
        className="filters"
        onSubmit={(event) => {
          event.preventDefault();
          create();
        }}
      >
        <label>
          Schedule id
          <input value={id} onChange={(e) => setId(e.target.value)} required />
        </label>
        <label>
          Workflow type (or DAG id)
          <input value={type} onChange={(e) => setType(e.target.value)} required />
        </label>
        <label>
          Cron expression
          <input value={cron} onChange={(e) => setCron(e.target.value)} required />
        </label>
        <label>
          Time zone
          <input value={zone} onChange={(e) => setZone(e.target.value)} />
        </label>
        <label className="wide">
          Input (JSON)
          <input value={input} onChange={(e) => setInput(e.target.value)} />
        </label>
        <label className="check">
          <input type="checkbox" checked={paused} onChange={(e) => setPaused(e.target.checked)} /> Paused
        </label>
        <button type="submit">Create schedule</button>
      </form>
      {answer && (
        <div role="status" className={answer.ok ? "ok" : "error"}>
          {answer.text}
          {answer.fires && (
            <ol data-testid="next-fires">
              {answer.fires.map((fire) => (
                <li key={fire}>{new Date(fire).toLocaleString()}</li>
              ))}
            </ol>
          )}
        </div>
      )}
    </details>
  );
}
