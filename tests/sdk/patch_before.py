"""hello_patch's workflow before the change (the code the first engine runs)."""

from __future__ import annotations

from datetime import timedelta

from ledgerflow import workflow
from tests.sdk.patch_acts import pre_patch_activity


@workflow.defn(name="PatchWorkflow")
class MyWorkflow:
    @workflow.run
    async def run(self) -> str:
        self._result = await workflow.execute_activity(
            pre_patch_activity, schedule_to_close_timeout=timedelta(minutes=5)
        )
        return self._result

    @workflow.query
    def result(self) -> str:
        return self._result
