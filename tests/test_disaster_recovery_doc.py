"""docs/disaster-recovery.md runs: every `bash` block, in order, in one shell, against a real store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "disaster-recovery.md"


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_the_disaster_recovery_procedure_works_as_written(tmp_path: Path) -> None:
    blocks = bash_blocks(DOC.read_text())
    assert len(blocks) >= 4
    script = "set -euo pipefail\n" + "\n".join(f"echo '### block {i}'\n{b}" for i, b in enumerate(blocks))
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "BACKUP_", "DATABASE_URL"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        RAGSTORE_BACKUP_SCHEDULE_FULL="",
        RAGSTORE_BACKUP_SCHEDULE_INCREMENTAL="",
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = done.stdout
    assert out.count("### block") == len(blocks)
    assert "found 0, remaining 0" in out  # both consistency checks after the restores
    assert "disaster recovery: warning" in out  # ready but for the repository sharing the disk
    assert (tmp_path / "restore-test" / "ragstore.db").is_file()
    assert (tmp_path / "data" / "ragstore.db").is_file()
    assert "지하철" in out  # the restored store answers the search
