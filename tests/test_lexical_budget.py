"""The in-memory lexical indexes' default budget: a share of the memory the process may use (the machine's,
or its cgroup's limit when lower), bounded; an explicit RAGSTORE_LEXICAL_MEMORY_MB always wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragstore.config import Settings
from ragstore.lexical.budget import AUTO_CEILING_MB, AUTO_FLOOR_MB, auto_budget_mb, usable_memory_bytes
from ragstore.lexical.factory import lexical_memory_mb

GIB = 1024**3
MACHINE = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_the_budget_is_a_sixteenth_of_memory_within_its_bounds() -> None:
    assert auto_budget_mb(24 * GIB) == 1536  # this machine's kind: a million 60-word chunks (~0.7 GB) fit
    assert auto_budget_mb(8 * GIB) == 512
    assert auto_budget_mb(1 * GIB) == AUTO_FLOOR_MB
    assert auto_budget_mb(512 * GIB) == AUTO_CEILING_MB


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, MACHINE),  # no cgroup files: the machine
        ({"memory.max": "max\n"}, MACHINE),  # cgroup v2 without a limit
        ({"memory.max": f"{2 * GIB}\n"}, 2 * GIB),  # a 2 GiB container
        ({"memory/memory.limit_in_bytes": f"{3 * GIB}\n"}, 3 * GIB),  # cgroup v1
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, MACHINE),  # v1's "no limit"
        ({"memory.max": "garbage"}, MACHINE),
    ],
)
def test_a_containers_limit_is_the_memory_it_may_use(tmp_path: Path, files: dict[str, str], expected: int) -> None:
    for name, value in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(value)
    assert usable_memory_bytes(tmp_path) == min(expected, MACHINE)


def test_an_explicit_setting_wins_and_zero_turns_the_index_off(tmp_path: Path) -> None:
    assert lexical_memory_mb(Settings(data_dir=tmp_path)) == auto_budget_mb(usable_memory_bytes())
    assert lexical_memory_mb(Settings(data_dir=tmp_path, lexical_memory_mb=2048)) == 2048
    assert lexical_memory_mb(Settings(data_dir=tmp_path, lexical_memory_mb=0)) == 0
