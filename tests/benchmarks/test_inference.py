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
