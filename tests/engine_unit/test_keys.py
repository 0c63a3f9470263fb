"""Every state key names the workflow it belongs to: what ``reshard`` re-routes by."""

from __future__ import annotations

import pytest

from ledgerflow.engine.state import keys


@pytest.mark.parametrize(
    "key",
    [
        keys.run_key("order:7/a"),
        keys.history_key("order:7/a", "run-1", 12),
        keys.timer_key(1_700_000_000.25, "order:7/a", "timer:run-1:3:0"),
        keys.request_key("order:7/a", "req-9"),
    ],
)
def test_each_kind_of_key_names_its_workflow(key: bytes) -> None:
    assert keys.workflow_of(key) == "order:7/a"


def test_partition_metadata_belongs_to_no_workflow() -> None:
    assert keys.workflow_of(keys.OPEN_RUNS) is None
    assert keys.workflow_of(keys.MOVED_TO) is None


def test_an_unknown_kind_of_key_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(ValueError, match="unknown state key"):
        keys.workflow_of(b"z/whatever")
