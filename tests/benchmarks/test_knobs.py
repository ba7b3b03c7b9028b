"""benchmarks.knobs on a tiny paired folder: the table covers exactly the knobs a checkpoint accepts,
the verdicts judge direction and size, the grid is written."""

import numpy as np
import pytest
import torch

from benchmarks import knobs
from rlenhance.checkpoint import load_checkpoint, save_checkpoint
from rlenhance.io import load_image, save_image
from rlenhance.models.policy import PixelActorCritic
from tests.specs import lowlight_spec

FIELDS = ["exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth"]


@pytest.fixture()
def setup(tmp_path, request):
    log_color = getattr(request, "param", False)
    rng = np.random.default_rng(0)
    for name in ("001_1", "002_1"):
        high = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
        save_image(tmp_path / "pairs" / "high" / f"{name}.png", high)
        save_image(tmp_path / "pairs" / "low" / f"{name}.png", high * 0.15)
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    spec = lowlight_spec(
        alpha_table=[round((a - 6) / 20, 2) for a in range(27)], damping=0.0, action_type="discrete", test_steps=2,
        alpha_mode="mean", cond_fields=FIELDS, cond_scale=[0.2, 1.0, 4.5, 1.0, 1.0],
        cond_offset=[0.5, 10.0, 1.151 if log_color else 5.5, 1.0, 20.0],
        cond_encodings=["linear", "linear", "log" if log_color else "linear", "linear", "linear"],
        setting={"exposure_target": 0.5, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0},
        observe_exposure_gap=False, max_side=None, conditioned=True,
        setting_ranges={"exposure_target": (0.3, 0.7), "w_color": (1.0, 10.0)})
    path = save_checkpoint(tmp_path / "policy.pt", model=policy, arch=policy.arch(), extra={"spec": spec})
    return tmp_path, path


def test_table_covers_the_accepted_knobs_and_lists_the_refused(setup, capsys):
    folder, checkpoint = setup
    grid = folder / "grid.png"
    result = knobs.main(["--checkpoint", str(checkpoint), "--data", str(folder / "pairs"), "--split", "all",
                         "--exposures", "0.3", "0.5", "0.9", "--grid", str(grid), "--threads", "1"])["pick"]
    rows = [(r["knob"], r["value"]) for r in result["table"]]
    assert rows == [("exposure", 0.3), ("exposure", 0.5), ("exposure", 0.7),
                    ("w_color", 1.0), ("w_color", 5.5), ("w_color", 10.0)]
    assert result["refused"] == ["w_exposure", "w_spatial", "w_smooth"]
    assert set(result["exposure_gaps"]) == {0.3, 0.5}  # 0.9 lies outside the checkpoint's range
    assert set(result["verdicts"]) == {"w_color"}
    out = capsys.readouterr().out
    assert "| w_color | 10 |" in out and "refused (fixed in training" in out and "w_smooth (= 20)" in out
    for row in result["table"]:  # each value measured with its own setting: means over the 2 images
        assert 0.0 < row["mean"] < 1.0 and row["color"] >= 0 and row["gain_tv"] >= 0
    from rlenhance import metrics
    from rlenhance.enhance import Enhancer

    enhancer, tensor = Enhancer(checkpoint, device="cpu"), lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]
    pairs = [[load_image(folder / "pairs" / kind / f"{n}.png") for kind in ("low", "high")] for n in ("001_1", "002_1")]
    outputs = [enhancer.enhance(low, exposure=0.7) for low, _ in pairs]
    psnrs = [float(metrics.psnr(tensor(out), tensor(high))) for out, (_, high) in zip(outputs, pairs)]
    assert result["table"][2]["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-4)  # the row of exposure 0.7
    # image_gap: each image's own |mean - 0.7|, averaged; |mean-E| of the averaged mean can only be smaller
    gaps = [abs(float(out.mean()) - 0.7) for out in outputs]
    assert result["table"][2]["image_gap"] == pytest.approx(np.mean(gaps), abs=1e-5)
    assert result["table"][2]["|mean-E|"] == pytest.approx(abs(np.mean([o.mean() for o in outputs]) - 0.7), abs=1e-5)
    picture = load_image(grid)
    assert picture.ndim == 3 and picture.shape[0] > 100 and picture.shape[1] > picture.shape[0]


@pytest.mark.parametrize("setup", [True], indirect=True)
def test_a_log_encoded_weight_is_measured_at_its_geometric_middle(setup):
    folder, checkpoint = setup
    result = knobs.main(["--checkpoint", str(checkpoint), "--data", str(folder / "pairs"), "--split", "all",
                         "--exposures", "0.5", "--threads", "1"])["pick"]
    values = [r["value"] for r in result["table"] if r["knob"] == "w_color"]
    assert values == pytest.approx([1.0, 10 ** 0.5, 10.0])  # the exposure target (linear) keeps 0.3, 0.5, 0.7
    assert [r["value"] for r in result["table"] if r["knob"] == "exposure"] == pytest.approx([0.3, 0.5, 0.7])


@pytest.mark.parametrize("values, expected", [
    ([0.010, 0.009, 0.008], "ok"),
    ([0.010, 0.011, 0.008], "NOT MONOTONE"),
    ([0.010, 0.0099, 0.0098], "too weak (2.0% < 5%)"),
])
def test_verdict_needs_the_expected_direction_and_size(values, expected):
    results = [{"color": v} for v in values]
    assert knobs.verdict("w_color", results, 0.05) == expected


def test_steps_overrides_the_checkpoints_test_steps(setup, capsys):
    folder, checkpoint = setup
    common = ["--checkpoint", str(checkpoint), "--data", str(folder / "pairs"), "--split", "all", "--exposures",
              "0.5", "--threads", "1"]
    means = {}
    for steps in ("1", "4"):
        result = knobs.main([*common, "--steps", steps])["pick"]
        means[steps] = [r["mean"] for r in result["table"]]
        assert f"({steps} curve steps, no cap, denoise 1)" in capsys.readouterr().out
    assert means["1"] != means["4"]  # the rollout ran the steps asked for, not the checkpoint's 2
    assert "(2 curve steps, no cap, denoise 1)" in (knobs.main(common), capsys.readouterr().out)[1]
    checked = knobs.main(common)["pick"]["denoise"]  # the clean stage's strength is checked as a knob
    assert list(checked["noise"]) == [0.0, 1.0, 2.0] and checked["verdict"] in capsys.readouterr().out
    assert checked["noise"][2.0] < checked["noise"][0.0]
    curves = knobs.main([*common, "--denoise", "0"])["pick"]["table"]  # --denoise reaches the Enhancer
    assert "(2 curve steps, no cap, denoise 0)" in capsys.readouterr().out
    assert [r["spatial"] for r in curves] != [r["spatial"] for r in knobs.main(common)["pick"]["table"]]
    # --max-overshoot caps every image: none ends more than 0.02 above the target in use
    free = [r["mean"] for r in knobs.main([*common, "--steps", "12"])["pick"]["table"]]
    result = knobs.main([*common, "--steps", "12", "--max-overshoot", "0.02"])["pick"]
    assert "(12 curve steps, max_overshoot 0.02, denoise 1)" in capsys.readouterr().out
    assert max(free) > 0.3 + 0.03  # the policy alone passes the lowest target
    for row in result["table"]:
        target = row["value"] if row["knob"] == "exposure" else 0.5
        assert row["mean"] <= target + 0.02 + 0.01  # the cap holds at the working resolution
        assert row["image_gap"] >= abs(row["mean"] - target) - 1e-9  # the per-image distance never cancels


def test_several_checkpoints_are_compared_and_one_named(setup, tmp_path, capsys):
    folder, checkpoint = setup
    state = load_checkpoint(checkpoint)
    torch.manual_seed(1)  # another policy of the same architecture and spec
    other = save_checkpoint(tmp_path / "other.pt", model=PixelActorCritic(**state["arch"]["kwargs"]),
                            arch=state["arch"], extra=state["extra"])
    result = knobs.main(["--checkpoint", str(other), str(checkpoint), "--data", str(folder / "pairs"), "--split",
                         "all", "--exposures", "0.3", "0.5", "--threads", "1", "--csv", str(tmp_path / "k.csv")])
    out = capsys.readouterr().out
    assert [r["checkpoint"] for r in result["reports"]] == [str(other), str(checkpoint)]
    assert result["pick"] is knobs.pick(result["reports"])
    assert result["reports"][0]["table"] != result["reports"][1]["table"]
    assert f"pick: {result['pick']['checkpoint']}" in out and "| checks passed |" in out
    assert (tmp_path / "k.csv").read_text().count("\n") == 1 + len(result["pick"]["table"])
    for r in result["reports"]:
        assert 0 < r["psnr"] < 60 and 0 < r["ssim"] <= 1 and r["checks"] == 3  # w_color, the sweep, darkening


def test_pick_prefers_more_checks_passed_then_psnr():
    reports = [{"checks_passed": 2, "psnr": 20.0}, {"checks_passed": 3, "psnr": 18.0},
               {"checks_passed": 3, "psnr": 19.0}, {"checks_passed": 1, "psnr": 25.0}]
    assert knobs.pick(reports) is reports[2]
