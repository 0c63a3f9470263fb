// The gateway's public REST API (/api/v1), with the API key the person gave, if any.

const KEY = "ledgerflow.apiKey";

export function apiKey(): string {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** A gateway answer other than 2xx, with what it said. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly body: unknown,
  ) {
    super(`${status}: ${detail}`);
  }
}

function detailOf(body: unknown, fallback: string): string {
  if (body && typeof body === "object") {
    const record = body as Record<string, unknown>;
    if (typeof record.detail === "string") return record.detail;
    if (typeof record.message === "string") return record.message;
    if (Array.isArray(record.errors)) {
      return record.errors
        .map((e) => (e && typeof e === "object" ? `${(e as Record<string, unknown>).field ?? ""}: ${(e as Record<string, unknown>).message ?? ""}` : String(e)))
        .join("; ");
    }
  }
  return fallback;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) throw new ApiError(response.status, detailOf(parsed, response.statusText), parsed);
  return parsed as T;
}

export const path = (id: string) => encodeURIComponent(id);

export type RunStatus = "RUNNING" | "COMPLETED" | "FAILED" | "CANCELED" | "TERMINATED" | "TIMED_OUT" | "CONTINUED_AS_NEW";
export const STATUSES: RunStatus[] = ["RUNNING", "COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT", "CONTINUED_AS_NEW"];

export interface WorkflowSummary {
  workflowId: string;
  runId: string;
  workflowType: string;
  status: RunStatus;
  startedAt: number;
  closedAt: number | null;
  historyLength: number;
  pendingActivities: { seq: number; activity: string; attempt: number; state: string; lastFailure: string | null }[];
}

export interface WorkflowList {
  workflows: WorkflowSummary[];
  nextCursor: string | null;
  partial: boolean;
  missingPartitions: number[];
}

export interface PendingActivity {
  seq: number;
  activityType: string;
  attempt: number;
  state: string;
  lastFailure?: string | null;
}

export interface WorkflowStatus {
  workflowId: string;
  runId: string;
  workflowType: string;
  status: RunStatus;
  isDag: boolean;
  input: unknown;
  result: unknown;
  failure: { type: string; message: string } | null;
  startedAt: number;
  closedAt: number | null;
  historyLength: number;
  pendingActivities: PendingActivity[];
  previousRuns: string[];
  cancelRequested: boolean;
  blocked: string | null;
  partition: number;
}

export interface TimelineEntry {
  seq: number;
  kind: "activity" | "timer" | "child_workflow";
  name: string;
  node: string | null;
  status: "scheduled" | "retrying" | "completed" | "failed" | "canceled";
  scheduledAt: number;
  completedAt: number | null;
  failedAt: number | null;
  attempts: number;
  lastFailure: string | null;
}

export interface HistoryPage {
  workflowId: string;
  runId: string;
  total: number;
  nextOffset: number | null;
  events: Record<string, unknown>[];
  timeline: TimelineEntry[] | null;
}
