import { useState } from "react";

/** Cursor paging: the cursors of the pages walked so far (the first page has none). */
export function usePages() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  return {
    cursor: cursors[cursors.length - 1],
    back: cursors.length > 1 ? () => setCursors(cursors.slice(0, -1)) : null,
    forward: (next: string) => setCursors([...cursors, next]),
    reset: () => setCursors([null]),
  };
}

export function Pager({ label, pages, next }: { label: string; pages: ReturnType<typeof usePages>; next: string | null | undefined }) {
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" disabled={!pages.back} onClick={() => pages.back?.()}>
        Previous
      </button>
      <button type="button" disabled={!next} onClick={() => next && pages.forward(next)}>
        Next
      </button>
    </nav>
  );
}
