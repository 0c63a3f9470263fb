import { useState } from "react";
import { apiKey, setApiKey } from "./api";
import { Run } from "./pages/Run";
import { Runs } from "./pages/Runs";
import { useRoute } from "./route";

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
          <a href="#/runs" aria-current={route.page !== "run" ? "page" : undefined}>
            Runs
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
      <main>{route.page === "run" ? <Run workflowId={route.workflowId} /> : <Runs />}</main>
    </>
  );
}
