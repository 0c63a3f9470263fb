"""``ledgerflow dev``: Kafka, an engine and a worker on a laptop, and a sample run through them.

The engine requires a token made for the stack (in the data folder); the gateway listens on
127.0.0.1 only and is started ``--insecure``: open to every local caller, as it says."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ledgerflow import Client
from ledgerflow.cli.kafka import progress_reporter
from ledgerflow.local.kafka import LocalKafka, LocalKafkaError
from ledgerflow.local.processes import Cluster
from ledgerflow.samples.dags import FAN_OUT_FAN_IN as SAMPLE_DAG

SAMPLES = "ledgerflow.samples.orders"


@click.command("dev")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".ledgerflow/dev"),
    show_default=True,
)
@click.option("--partitions", type=int, default=4, show_default=True)
@click.option("--once", is_flag=True, help="Run the sample, then stop everything (Kafka too).")
def dev_command(data_dir: Path, partitions: int, once: bool) -> None:
    """Start Kafka, an engine and a worker locally, and run a sample workflow and DAG."""
    console = Console(stderr=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with progress_reporter(console) as progress:
            kafka = LocalKafka(data_dir / "kafka", progress=progress)
            bootstrap = kafka.up()
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[green]Kafka[/] at {bootstrap}")
    cluster = Cluster(bootstrap, "dev.", data_dir, partitions=partitions)
    engine = cluster.engine([SAMPLES])
    cluster.worker([SAMPLES])
    gateway = cluster.gateway([SAMPLES], insecure=True)
    try:
        with console.status("Starting an engine, a worker and the gateway"):
            engine.wait_ready(timeout=120)
            gateway.wait_ready(timeout=120)
        console.print(f"[green]engine[/] at {engine.url} (logs: {engine.log_path})")
        console.print(f"[green]gateway[/] at {gateway.url} (OpenAPI: {gateway.url}/docs)")
        console.print(f"[green]web UI[/] at {gateway.url}/ui")
        console.print(
            "[yellow]the gateway is OPEN[/] (--insecure: no API keys, every local caller may do "
            "everything); production gateways need LEDGERFLOW_API_KEYS_FILE or LEDGERFLOW_JWT_JWKS_URL"
        )
        with cluster.client() as client:
            _run_samples(console, client)
        if once:
            return
        console.print(
            f"\nRunning. Try:\n  export LEDGERFLOW_BOOTSTRAP={bootstrap} LEDGERFLOW_PREFIX=dev. "
            f"LEDGERFLOW_PARTITIONS={partitions} LEDGERFLOW_ENGINE_TOKEN_FILE={cluster.engine_token_file}\n"
            "  ledgerflow start ProcessOrder --id order-1 "
            '--input \'{"order_id": "1", "amount": 5}\' --wait\n'
            f"  curl -X POST {gateway.url}/api/v1/workflows/{SAMPLE_DAG['id']}/execute "
            f"-H 'content-type: application/json' -d '{{\"input\": {{\"count\": 5}}}}'\n"
            f"  curl {gateway.url}/api/v1/workflows?limit=5\n"
            f"  curl {engine.url}/metrics   # the engine's other routes need its token\n"
            f"Logs in {data_dir}. Ctrl-C stops the engine and the worker "
            f"('ledgerflow kafka down --data-dir {data_dir / 'kafka'}' stops Kafka)."
        )
        while engine.alive() and gateway.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop_all()
        if once:
            kafka.down()


def _run_samples(console: Console, client: Client) -> None:
    workflow_id = f"order-{int(time.time())}"
    started = time.monotonic()
    client.start_workflow("ProcessOrder", {"order_id": workflow_id, "amount": 42.0}, id=workflow_id)
    result = client.result(workflow_id, timeout=60)
    elapsed = time.monotonic() - started
    console.print(f"[green]ProcessOrder[/] {workflow_id} completed in {elapsed:.2f} s: {result}")
    table = Table("#", "event", "detail", title=f"history of {workflow_id}")
    for event in client.history(workflow_id):
        detail = getattr(event, "activity_type", "") or str(getattr(event, "result", "") or "")
        table.add_row(str(event.index), event.kind, detail)
    console.print(table)
    client.register_dag(SAMPLE_DAG)
    dag_id = f"dag-{int(time.time())}"
    client.start_workflow(SAMPLE_DAG["id"], {"count": 10}, id=dag_id)
    total = client.result(dag_id, timeout=60)["total"]
    console.print(f"[green]DAG {SAMPLE_DAG['id']}[/] {dag_id} completed: {total}")
