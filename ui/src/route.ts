// Pages are addressed by the URL's hash (#/runs, #/runs/<id>, #/editor, #/schedules, #/cluster): the gateway serves one file.
import { useEffect, useState } from "react";

export type Route = { page: "runs" } | { page: "run"; workflowId: string } | { page: "editor" } | { page: "schedules" } | { page: "cluster" };

export function parse(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "editor") return { page: "editor" };
  if (parts[0] === "schedules") return { page: "schedules" };
  if (parts[0] === "cluster") return { page: "cluster" };
  if (parts[0] === "runs" && parts.length > 1 && parts[1]) {
    try {
      return { page: "run", workflowId: decodeURIComponent(parts.slice(1).join("/")) };
    } catch {
      return { page: "runs" }; // a malformed link: the list, not a blank page
    }
  }
  return { page: "runs" };
}

export const runHref = (workflowId: string) => `#/runs/${encodeURIComponent(workflowId)}`;

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parse(location.hash));
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}
