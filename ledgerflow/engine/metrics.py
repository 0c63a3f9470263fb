"""Prometheus metrics of an engine node: what an operator would page on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STARTED = Counter("ledgerflow_workflows_started_total", "Runs started.")
CLOSED = Counter("workflow_execution_total", "Runs closed, by final status.", ["status"])
RUN_DURATION = Histogram("workflow_execution_duration_seconds", "Start to close of a run.")
ACTIVITY_LATENCY = Histogram(
    "node_execution_duration_seconds", "Dispatch to result of an activity attempt (a DAG node or code step)."
)
RETRIES = Counter("ledgerflow_activity_retries_total", "Activity attempts that failed and will be retried.")
STALE_RESULTS = Counter(
    "ledgerflow_stale_task_results_total", "Task results for attempts no longer awaited (duplicates, late)."
)
DUPLICATES = Counter(
    "ledgerflow_duplicate_commands_total", "Commands dropped as seen before (idempotency key)."
)
DEAD_LETTERS = Counter("ledgerflow_dead_letters_total", "Inbox records sent to the dead-letter topic.")
INGRESS_FORWARDED = Counter(
    "ledgerflow_ingress_forwarded_total",
    "Records of namespaces' ingress topics forwarded into the inbox (refused ones are dead letters).",
)
EXPIRED = Counter("ledgerflow_runs_expired_total", "Closed runs deleted after their retention.")
REPLAYS = Counter("ledgerflow_replays_total", "Instances rebuilt by replaying history.")
QUERIES = Counter(
    "ledgerflow_queries_total",
    "Queries answered, by source: a copy of the cached instance, or a replay of the history.",
    ["source"],
)
NONDETERMINISM = Counter(
    "ledgerflow_nondeterminism_total",
    "Replays whose code diverged from the run's history (each try of a blocked run counts).",
)
BLOCKED = Counter(
    "ledgerflow_runs_blocked_total",
    "Runs kept open because their code does not replay their history or is not loaded (a bad "
    "deploy): they hold what arrives for them until code that replays is deployed.",
)
TRANSACTIONS = Counter(
    "ledgerflow_transactions_total", "Kafka transactions committed, by outcome.", ["outcome"]
)
BATCH_SIZE = Histogram(
    "ledgerflow_batch_records", "Inbox records per transaction.", buckets=(1, 5, 10, 50, 100, 500, 1000, 5000)
)
HOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INBOX_WAIT = Histogram(
    "ledgerflow_inbox_wait_seconds",
    "From an inbox record's Kafka timestamp (its producer's clock) to its batch being applied: a "
    "start, signal or task result waiting for the owner (at most 16 records a batch, evenly spaced).",
    buckets=HOP_BUCKETS,
)
APPLY_LATENCY = Histogram(
    "ledgerflow_batch_apply_seconds",
    "Time to apply one batch (records, timers) before its transaction commits.",
    buckets=HOP_BUCKETS,
)
COMMIT_LATENCY = Histogram(
    "ledgerflow_commit_seconds",
    "Time to produce and commit one applied batch's transaction, and write its state.",
    buckets=HOP_BUCKETS,
)
OWNED_PARTITIONS = Gauge("ledgerflow_owned_partitions", "Inbox partitions this node owns.")
RESTORED_RECORDS = Counter(
    "ledgerflow_restored_changelog_records_total", "Changelog records applied during restore."
)
RESTORE_SECONDS = Histogram("ledgerflow_restore_seconds", "Time to restore one partition's state.")
OPEN_WORKFLOWS = Gauge("workflow_entity_count", "Open workflows on the partitions this node owns.")
REFUSED = Counter("ledgerflow_starts_refused_total", "Starts refused because a capacity limit was reached.")
ENGINE_LOAD = Gauge(
    "engine_load", "Open workflows on this node over its capacity (open count when unlimited)."
)
FAILOVERS = Counter(
    "workflow_failover_total", "Takeovers of partitions from an engine that left without giving them up."
)
REBALANCES = Counter(
    "workflow_rebalance_total", "Partition assignment changes seen by this node.", ["change"]
)
HISTORY_WARNINGS = Counter(
    "ledgerflow_history_limit_warnings_total",
    "Runs whose history passed history_warn_events or history_warn_bytes (they fail at the max_ limits).",
)
RUN_LIMIT_FAILURES = Counter(
    "ledgerflow_run_limit_failures_total",
    "Runs failed or records refused by a per-run limit, by error type (e.g. HistoryTooLarge).",
    ["type"],
)
QUEUE_WORKERS = Gauge(
    "ledgerflow_task_queue_workers",
    "Workers in each task queue's group, as this engine last saw them (0: its tasks wait).",
    ["queue"],
)
STUCK_CALLS = Counter(
    "ledgerflow_stuck_kafka_calls_total",
    "Transactional producer calls that did not return in time; the engine dropped that producer.",
    ["call"],
)
SCHEDULE_ACTIONS = Counter(
    "ledgerflow_schedule_actions_total",
    "Runs started by schedules, by what started them (fire, trigger, backfill, buffered).",
    ["cause"],
)
SCHEDULE_MISSED = Counter(
    "ledgerflow_schedule_missed_total",
    "Schedule fires older than their catch-up window when an engine got to them.",
)
SCHEDULE_SKIPPED = Counter(
    "ledgerflow_schedule_skipped_total",
    "Schedule fires not taken because a run was open, by overlap policy.",
    ["overlap"],
)
SCHEDULE_LAG = Histogram(
    "ledgerflow_schedule_start_lag_seconds",
    "From a schedule's fire time (jitter included) to its run starting at the run's owner.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


class InboxLag(Collector):
    """``ledgerflow_inbox_lag_records{partition}``: inbox records behind the end of each partition
    this node owns, as of its last batch (read at scrape time, so a partition that moved away
    leaves no stale series behind)."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[int, int]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ledgerflow_inbox_lag_records",
            "Inbox records not yet applied, per owned partition (from cached watermarks).",
            labels=["partition"],
        )
        for partition, lag in sorted(dict(self.source()).items()):
            family.add_metric([str(partition)], lag)
        yield family


INBOX_LAG = InboxLag()
REGISTRY.register(INBOX_LAG)
