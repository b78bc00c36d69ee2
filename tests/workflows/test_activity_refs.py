"""Workflows call activities by typed method reference, never by string name, and the names
registered with Temporal (what histories record) stay the ones running workflows know."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

from activities.deps import ActivityDeps
from config.runtime import Resources
from worker import build_activities

WORKFLOWS_DIR = Path(__file__).resolve().parents[2] / "workflows"
# Every workflow-side way to run an activity; only the `_method` forms lack a string overload.
ACTIVITY_CALLS = {
    f"{verb}_{kind}{suffix}"
    for verb in ("execute", "start")
    for kind in ("activity", "local_activity")
    for suffix in ("", "_method")
}
# What histories in flight have recorded: renaming one strands every workflow that has it.
REGISTERED_NAMES = {
    "health.ping_database",
    "ledger.expire_stale_holds",
    "callbacks.deliver",
    "tasks.submit",
    "tasks.poll",
    "tasks.finalize",
    "tasks.reconcile",
    "tasks.recover_stuck",
    "tasks.store_results",
    "payments.apply_stripe_event",
    "payments.prepare_recharge",
    "payments.charge_recharge",
    "payments.recharge_rearmed",
    "billing.allocate_batch",
    "retention.plan_rollup",
    "retention.rollup_batch",
    "retention.delete_details",
    "retention.trim_callbacks",
    "retention.delete_rate_windows",
    "retention.delete_results",
}


def string_named_calls(source: str, module: Any = None) -> list[str]:
    """`line: call` for each activity call whose activity is a string: a literal, an
    f-string, or a module-level name bound to a string (when `module` is given)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ACTIVITY_CALLS:
            continue
        first = node.args[0] if node.args else None
        named = any(k.arg in ("activity", "result_type") for k in node.keywords)
        if isinstance(first, ast.Constant | ast.JoinedStr) and not isinstance(
            getattr(first, "value", None), bytes
        ):
            named = True
        elif isinstance(first, ast.Name) and module is not None:
            named = named or isinstance(getattr(module, first.id, None), str)
        if named:
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def _workflow_modules() -> list[tuple[Path, Any]]:
    return [
        (path, importlib.import_module(f"workflows.{path.stem}"))
        for path in sorted(WORKFLOWS_DIR.glob("*.py"))
        if path.stem != "__init__"
    ]


def test_no_workflow_calls_an_activity_by_string_name() -> None:
    offenders = {
        path.name: calls
        for path, module in _workflow_modules()
        if (calls := string_named_calls(path.read_text(), module))
    }
    assert offenders == {}, "call activities by method reference (execute_activity_method)"


@pytest.mark.parametrize(
    "call",
    [
        'await workflow.execute_activity("tasks.submit", ref, result_type=SubmitResult)',
        "await workflow.execute_activity(SUBMIT, ref)",
        'await workflow.start_activity(f"tasks.{step}", ref)',
        "await workflow.execute_activity(activity=SUBMIT, arg=ref)",
        "await workflow.execute_local_activity('x', ref)",
    ],
)
def test_the_check_catches_each_spelling_of_a_string_name(call: str) -> None:
    module = type("M", (), {"SUBMIT": "tasks.submit"})
    source = f"async def run(ref, step):\n    {call}\n"
    assert len(string_named_calls(source, module)) == 1


def test_the_check_lets_method_references_through() -> None:
    source = (
        "async def run(ref, step):\n"
        "    await workflow.execute_activity_method(TaskActivityDefs.submit, ref)\n"
        "    await workflow.execute_activity_method(step, ref)\n"
    )
    assert string_named_calls(source, type("M", (), {})) == []


def _defn_name(fn: Any) -> str:
    return str(getattr(fn, "__temporal_activity_definition").name)


def test_every_stub_is_implemented_under_its_own_name(resources: Resources) -> None:
    """Each workflow-side stub (`*ActivityDefs`) has an implementation registered with the
    worker under the same name, and the registered names are exactly the recorded ones."""
    deps = ActivityDeps(
        settings=resources.settings, sessions=resources.sessions, http=resources.http
    )
    registered = {_defn_name(fn): fn for fn in build_activities(deps)}
    assert set(registered) == REGISTERED_NAMES

    stubs: dict[str, Any] = {}
    for _, module in _workflow_modules():
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls_name.endswith("ActivityDefs") and cls.__module__ == module.__name__:
                for attr, fn in vars(cls).items():
                    if hasattr(fn, "__temporal_activity_definition"):
                        stubs[_defn_name(fn)] = (cls, attr)
    assert set(stubs) == REGISTERED_NAMES
    for name, (cls, attr) in stubs.items():
        bound = registered[name]
        assert cls in type(bound.__self__).__mro__, f"{name}: implemented outside {cls.__name__}"
        assert bound.__name__ == attr, f"{name}: stub {attr}, implementation {bound.__name__}"
