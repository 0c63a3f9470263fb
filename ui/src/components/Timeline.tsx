import type { TimelineEntry } from "../api";

const ROW = 28;
const LABEL = 180;

/** Every activity attempt, timer and child run of a run as bars on one time axis (a Gantt). */
export function Timeline({ entries, startedAt, closedAt }: { entries: TimelineEntry[]; startedAt: number; closedAt: number | null }) {
  if (entries.length === 0) return <p>No activities, timers or child runs yet.</p>;
  const now = Date.now() / 1000;
  const end = Math.max(closedAt ?? now, ...entries.map((e) => e.completedAt ?? e.failedAt ?? now));
  const span = Math.max(end - startedAt, 0.001);
  const width = 640;
  const x = (t: number) => LABEL + ((t - startedAt) / span) * width;
  return (
    <figure className="timeline">
      <svg
        role="img"
        aria-labelledby="timeline-caption"
        viewBox={`0 0 ${LABEL + width + 10} ${entries.length * ROW + 24}`}
        width="100%"
      >
        {entries.map((entry, row) => {
          const stop = entry.completedAt ?? entry.failedAt ?? now;
          const y = row * ROW + 4;
          const label = entry.node ? `${entry.node} (${entry.name})` : entry.name;
          const seconds = stop - entry.scheduledAt;
          return (
            <g key={`${entry.kind}-${entry.seq}`} data-testid="timeline-row" data-status={entry.status}>
              <text x={4} y={y + 16} className="tl-label">
                {label.length > 24 ? `${label.slice(0, 23)}…` : label}
              </text>
              <rect
                x={x(entry.scheduledAt)}
                y={y}
                width={Math.max(x(stop) - x(entry.scheduledAt), 3)}
                height={ROW - 8}
                className={`tl-bar tl-${entry.status}`}
              >
                <title>
                  {`${entry.kind} ${label}: ${entry.status}, ${entry.attempts} attempt(s), ${(seconds * 1000).toFixed(0)} ms` +
                    (entry.lastFailure ? ` — ${entry.lastFailure}` : "")}
                </title>
              </rect>
            </g>
          );
        })}
        <text x={LABEL} y={entries.length * ROW + 20} className="tl-axis">
          0 s
        </text>
        <text x={LABEL + width} y={entries.length * ROW + 20} className="tl-axis" textAnchor="end">
          {span.toFixed(3)} s
        </text>
      </svg>
      <table className="visually-hidden">
        <caption>Steps of the timeline</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Milliseconds</th>
            <th scope="col">Last failure</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((entry) => (
            <tr key={`${entry.kind}-${entry.seq}`}>
              <td>{entry.node ? `${entry.node} (${entry.name})` : entry.name}</td>
              <td>{entry.status}</td>
              <td>{entry.attempts}</td>
              <td>{(((entry.completedAt ?? entry.failedAt ?? now) - entry.scheduledAt) * 1000).toFixed(0)}</td>
              <td>{entry.lastFailure ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <figcaption id="timeline-caption">
        Timeline: {entries.length} step(s) over {span.toFixed(3)} s from the run's start
      </figcaption>
    </figure>
  );
}
