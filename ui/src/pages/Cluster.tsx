import { call } from "../api";
import { usePolled, when } from "../poll";

interface Member {
  memberId: string;
  url: string;
  host: string;
  partitions: number[];
  reachable: boolean;
  node: string | null;
  restoring: number[];
  openWorkflows: number;
  lag: number;
  process: { cpu_seconds?: number; rss_bytes?: number };
}

interface ClusterStats {
  groupState: string;
  partitions: number;
  members: Member[];
  unassignedPartitions: number[];
}

interface ClusterEvent {
  type: string;
  node: string;
  time: number;
  partitions: number[];
  seconds: number | null;
  failoverFrom: string[] | null;
  reason?: string;
}

const MB = 1024 * 1024;

/** The engines, the partitions each owns with their lag and open runs, and the cluster's
 * recent membership changes, partition moves and failovers. Needs an ``admin`` key. */
export function Cluster() {
  const stats = usePolled(() => call<ClusterStats>("GET", "/cluster/stats"), 5, []);
  const events = usePolled(() => call<{ events: ClusterEvent[] }>("GET", "/cluster/events?limit=50"), 5, []);
  const data = stats.data;
  return (
    <section aria-labelledby="cluster-title">
      <h1 id="cluster-title">Cluster</h1>
      {stats.error && <p role="alert" className="error">{stats.error.message}</p>}
      {data && (
        <p data-testid="cluster-summary">
          Group {data.groupState}: {data.members.length} engine(s), {data.partitions} partition(s)
          {data.unassignedPartitions.length > 0 ? `, unowned: ${data.unassignedPartitions.join(", ")}` : ", every one owned"}
        </p>
      )}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Engine</th>
              <th scope="col">Partitions</th>
              <th scope="col">Open runs</th>
              <th scope="col">Inbox lag</th>
              <th scope="col">CPU s</th>
              <th scope="col">Memory</th>
              <th scope="col">Answers</th>
            </tr>
          </thead>
          <tbody>
            {data?.members.map((m) => (
              <tr key={m.memberId} data-testid="cluster-engine">
                <td>
                  {m.node ?? m.memberId}
                  <br />
                  <span className="muted">{m.url}</span>
                </td>
                <td>
                  {m.partitions.join(", ") || "none"}
                  {m.restoring.length > 0 && ` (restoring ${m.restoring.join(", ")})`}
                </td>
                <td>{m.openWorkflows}</td>
                <td>{m.lag}</td>
                <td>{m.process.cpu_seconds?.toFixed(1) ?? "—"}</td>
                <td>{m.process.rss_bytes ? `${(m.process.rss_bytes / MB).toFixed(0)} MiB` : "—"}</td>
                <td>{m.reachable ? "yes" : "no"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Membership and partition moves</h2>
      {events.error && <p role="alert" className="error">{events.error.message}</p>}
      <ol className="history" reversed>
        {[...(events.data?.events ?? [])].reverse().map((e, i) => (
          <li key={i} data-testid="cluster-event">
            <span className="muted">{when(e.time)}</span> <span className="event-type">{e.type}</span> {e.node}
            {e.partitions.length > 0 && ` partitions ${e.partitions.join(", ")}`}
            {e.seconds !== null && e.seconds !== undefined && ` in ${e.seconds.toFixed(2)} s`}
            {e.failoverFrom && <strong> failover from {e.failoverFrom.join(", ")}</strong>}
            {e.reason && ` (${e.reason})`}
          </li>
        ))}
      </ol>
    </section>
  );
}
