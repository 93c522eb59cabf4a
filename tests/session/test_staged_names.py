"""The sync's staged file names leave nothing behind in the daemon (issue 17, row h)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_PROBE = """
import sys, tracemalloc
from pathlib import Path
from dockyard.session.filesync import TreeWriter

writer = TreeWriter(Path(sys.argv[1]), Path(sys.argv[1]) / "staging")
tracemalloc.start()
for sync in range(4):  # four syncs of a 5,000-file context, each naming its staged files
    names = [writer.staged(i) for i in range(sync * 5000, (sync + 1) * 5000)]
    assert names[0] == f"{writer.staging}/{sync * 5000}"
    del names
print(tracemalloc.get_traced_memory()[0])
"""


def test_staged_names_leave_no_interned_strings_behind(tmp_path: Path) -> None:
    # pathlib interns every part it parses; the interned-string table never shrinks (0.9 MiB
    # here, 1.9 MiB in a daemon after bench row f)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 64 * 1024
