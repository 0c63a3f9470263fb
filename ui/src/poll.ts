import { useEffect, useRef, useState } from "react";

/** ``load()``'s latest answer, asked again every ``seconds`` while the page shows it (0: once;
 * a change of ``seconds`` asks at once). */
export function usePolled<T>(load: () => Promise<T>, seconds: number, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [tick, setTick] = useState(0);
  const current = useRef(load);
  current.current = load;
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    const run = async () => {
      if (document.hidden && seconds > 0) {  // a tab in the background asks nothing
        timer = window.setTimeout(run, seconds * 1000);
        return;
      }
      try {
        const answer = await current.current();
        if (live) {
          setData(answer);
          setError(null);
        }
      } catch (err) {
        if (live) setError(err as Error);
      }
      if (live && seconds > 0) timer = window.setTimeout(run, seconds * 1000);
    };
    run();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick, seconds]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export const when = (seconds: number | null | undefined) =>
  seconds ? new Date(seconds * 1000).toLocaleString() : "—";
