# Runs one command and reports what it cost, as the last line on stderr:
#   {"wallMs": …, "userMs": …, "sysMs": …, "maxRssKiB": …, "code": …}
# CPU and peak RSS come from wait4(2), so they cover the command and every
# process it waited for (peak RSS is the largest single process).
# Usage: python3 -I -S rusage.py SETTLE_SECONDS COMMAND...
# SETTLE_SECONDS: sleep before starting the command, so a CFS quota spent by
# the sandbox's own setup is refilled before the clock starts.
import json
import os
import sys
import time

settle = float(sys.argv[1])
argv = sys.argv[2:]
if settle:
    time.sleep(settle)
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
sys.stderr.write("\n" + json.dumps({
    "wallMs": wall * 1000,
    "userMs": usage.ru_utime * 1000,
    "sysMs": usage.ru_stime * 1000,
    "maxRssKiB": usage.ru_maxrss,
    "code": os.waitstatus_to_exitcode(status),
}) + "\n")
