import { lazy, Suspense, useState } from "react";
import { apiKey, setApiKey } from "./api";
import { Cluster } from "./pages/Cluster";
import { Run } from "./pages/Run";
import { Runs } from "./pages/Runs";
import { Schedules } from "./pages/Schedules";
import { useRoute } from "./route";

// The editor (React Flow) loads when it is opened: the runs pages do not carry it.
const Editor = lazy(() => import("./pages/Editor").then((module) => ({ default: module.Editor })));

export function App() {
  const route = useRoute();
  const [key, setKey] = useState(apiKey());
  return (
    <>
      <header className="bar">
        <a className="brand" href="#/runs">
          Ledgerflow
        </a>
        <nav aria-label="Pages">
          <a href="#/runs" aria-current={route.page === "runs" ? "page" : undefined}>
            Runs
          </a>
          <a href="#/editor" aria-current={route.page === "editor" ? "page" : undefined}>
            DAG editor
          </a>
          <a href="#/schedules" aria-current={route.page === "schedules" ? "page" : undefined}>
            Schedules
          </a>
          <a href="#/cluster" aria-current={route.page === "cluster" ? "page" : undefined}>
            Cluster
          </a>
        </nav>
        <form
          className="key"
          onSubmit={(event) => {
            event.preventDefault();
            setApiKey(key.trim());
            location.reload();
          }}
        >
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            value={key}
            onChange={(event) => setKey(event.target.value)}
            placeholder="X-API-Key"
          />
          <button type="submit">Use</button>
        </form>
      </header>
      <main className={route.page === "editor" ? "wide" : undefined}>
        {route.page === "run" ? (
          <Run key={route.workflowId} workflowId={route.workflowId} />
        ) : route.page === "editor" ? (
          <Suspense fallback={<p>Loading the editor…</p>}>
            <Editor />
          </Suspense>
        ) : route.page === "schedules" ? (
          <Schedules />
        ) : route.page === "cluster" ? (
          <Cluster />
        ) : (
          <Runs />
        )}
      </main>
    </>
  );
}
