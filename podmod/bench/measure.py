"""`python -m podmod.bench.measure REPORT COMMAND...`: run COMMAND, then write its seconds and its
own peak resident memory to the file REPORT (JSON), and exit with its exit code.

The benchmarks start their measured processes through this small one. The kernel gives a child
started by fork or vfork the peak of the process it came from until it runs its own program, so a
child of the benchmark itself (which holds a million floor rows and two versions of a list) was
reported at the benchmark's size, not its own; a child of this process is reported at its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    report, *command = argv
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(report, "w", encoding="utf-8") as out:
        json.dump({"seconds": seconds, "peak_kib": usage.ru_maxrss, "code": code}, out)
    return code if code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
