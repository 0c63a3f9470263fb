"""``ledgerflow codec keygen`` and ``ledgerflow codec rotate``: make and rotate payload codec keys."""

from __future__ import annotations

from pathlib import Path

import click

from ledgerflow.codec.keyfile import KeyFileError, rotate_key_file, write_new_key_file

PATH = click.Path(dir_okay=False, path_type=Path)


@click.group("codec")
def codec_group() -> None:
    """Payload encryption keys (AES-256-GCM) for LEDGERFLOW_CODEC_KEYS_FILE."""


@codec_group.command("keygen")
@click.argument("path", type=PATH)
def keygen_command(path: Path) -> None:
    """Write a key file with one new active key to PATH (mode 0600; never over an existing file)."""
    try:
        key_id = write_new_key_file(path)
    except FileExistsError as exc:
        raise click.ClickException(f"{path} exists; `ledgerflow codec rotate {path}` adds a key") from exc
    click.echo(f"codec key {key_id} written to {path}; set LEDGERFLOW_CODEC_KEYS_FILE={path}", err=True)


@codec_group.command("rotate")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def rotate_command(path: Path) -> None:
    """Add a new key to PATH and make it the active one; the older keys still decode.

    Give every component the new file before payloads encoded with the new key reach them.
    """
    try:
        key_id = rotate_key_file(path)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"codec key {key_id} added to {path} and made active", err=True)
