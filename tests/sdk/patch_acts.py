"""The activities of Temporal's hello_patch sample (tests/sdk/patch_before.py, patch_after.py)."""

from __future__ import annotations

import asyncio

from ledgerflow import activity


@activity.defn
async def pre_patch_activity() -> str:
    await asyncio.sleep(2)  # long enough for a deploy to happen while it runs
    return "pre-patch"


@activity.defn
async def post_patch_activity() -> str:
    return "post-patch"
