"""hello_patch's workflow after the change, guarded by ``workflow.patched`` (the code deployed
while a run of the old code is in flight)."""

from __future__ import annotations

from datetime import timedelta

from ledgerflow import workflow
from tests.sdk.patch_acts import post_patch_activity, pre_patch_activity


@workflow.defn(name="PatchWorkflow")
class MyWorkflow:
    @workflow.run
    async def run(self) -> str:
        if workflow.patched("my-patch"):
            self._result = await workflow.execute_activity(
                post_patch_activity, schedule_to_close_timeout=timedelta(minutes=5)
            )
        else:
            self._result = await workflow.execute_activity(
                pre_patch_activity, schedule_to_close_timeout=timedelta(minutes=5)
            )
        return self._result

    @workflow.query
    def result(self) -> str:
        return self._result
