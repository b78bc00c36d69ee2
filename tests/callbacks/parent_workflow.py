"""A stand-in for the task workflow: starts the delivery as a child and finishes at once.

Kept in its own module with workflow-safe imports only, because the sandbox re-imports the
module that defines a workflow.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.callbacks import CallbackJob, start_callback_child


@workflow.defn(name="TestCallbackParent")
class CallbackParentWorkflow:
    @workflow.run
    async def run(self, job: CallbackJob) -> str:
        await start_callback_child(job)
        await start_callback_child(job)  # a duplicate start is a no-op
        return "started"
