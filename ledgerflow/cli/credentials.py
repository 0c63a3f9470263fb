"""``ledgerflow api-key create`` and ``ledgerflow engine-token create``: make credentials."""

from __future__ import annotations

from pathlib import Path

import click

from ledgerflow.api.keys import entry_line, new_key
from ledgerflow.api.scopes import Scope
from ledgerflow.engine_token import write_new_token
from ledgerflow.secretfiles import write_private


def _scopes(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[Scope]:
    names = [part.strip() for item in value for part in item.split(",") if part.strip()]
    unknown = sorted({n for n in names if n not in {s.value for s in Scope}})
    if unknown or not names:
        raise click.BadParameter(
            f"name scopes among {', '.join(s.value for s in Scope)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    return [Scope(n) for n in names]


@click.group("api-key")
def api_key_group() -> None:
    """Make API keys for the gateway (stored hashed in LEDGERFLOW_API_KEYS_FILE)."""


@api_key_group.command("create")
@click.option("--name", required=True, help="Who holds the key (shown in logs).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    callback=_scopes,
    help="read, write, admin, metrics (comma-separated or repeated).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    default=("default",),
    show_default=True,
    help="Namespace(s) of the key (recorded for namespaces; not enforced yet).",
)
@click.option(
    "--file",
    "keys_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append the entry to this keys file (created mode 0600); then only the key is printed.",
)
def create_key_command(
    name: str, scopes: list[Scope], namespaces: tuple[str, ...], keys_file: Path | None
) -> None:
    """Make a key: print it once (it is not stored anywhere) and its keys-file entry."""
    key, entry = new_key(name, scopes, namespaces)
    line = entry_line(entry)
    if keys_file is not None:
        write_private(keys_file, line + "\n", append=True)
        click.echo(f"entry {entry.name!r} appended to {keys_file}; the key, shown once:", err=True)
        click.echo(key)
        return
    click.echo(f"key:   {key}")
    click.echo(f"entry: {line}")
    click.echo("Keep the key secret (it is shown once); add the entry to LEDGERFLOW_API_KEYS_FILE.", err=True)


@click.group("engine-token")
def engine_token_group() -> None:
    """Make the token engines require on their HTTP routes (LEDGERFLOW_ENGINE_TOKEN_FILE)."""


@engine_token_group.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def create_token_command(path: Path) -> None:
    """Write a new random token to PATH (mode 0600; an existing file is left alone)."""
    try:
        write_new_token(path)
    except FileExistsError as exc:
        raise click.ClickException(f"{path} exists; remove it first to make a new token") from exc
    click.echo(f"engine token written to {path}; set LEDGERFLOW_ENGINE_TOKEN_FILE={path}", err=True)
