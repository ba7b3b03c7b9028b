"""benchmarks.inference: the 600x400 comparison times the two in alternation, round by round."""

import time

from benchmarks.inference import ms_alternating


def test_rounds_alternate_and_pair_up():
    calls = []

    def quick():
        calls.append("quick")

    def slow():
        calls.append("slow")
        time.sleep(0.002)

    ms = ms_alternating({"quick": quick, "slow": slow}, repeats=5)
    assert calls[:4] == ["quick", "quick", "slow", "slow"]  # two warm-up calls each
    assert calls[4:] == ["quick", "slow"] * 5  # then one of each per round
    assert len(ms["quick"]) == len(ms["slow"]) == 5
    assert (ms["slow"] >= 2.0).all() and (ms["quick"] < ms["slow"]).all()  # milliseconds, round by round


def test_the_command_wrapper_reports_status_wall_peak_memory_and_cpu_time():
    import subprocess
    import sys

    from benchmarks.inference import CLI_WRAPPER

    busy = "s = 0\nfor i in range(3_000_000): s += i\nprint('done')"
    report = subprocess.run([sys.executable, "-c", CLI_WRAPPER, sys.executable, "-c", busy], capture_output=True,
                            text=True, check=True).stdout
    first, output = report.split("\n", 1)
    status, wall, peak_kib, cpu = first.split()
    assert status == "0" and output == "done"
    assert int(peak_kib) > 0 and 0 < float(cpu) and float(wall) > 0
