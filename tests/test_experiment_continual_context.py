"""continual_context: NL sec. 9.1's CTNL protocol in context, at its "test" preset and on synthetic means."""

from __future__ import annotations

import pytest
import torch

from hope_lite.experiments import continual_context as cc
from hope_lite.experiments.config import UsageError
from hope_lite.experiments.registry import get_experiment

CPU = torch.device("cpu")
KEYS = {"acc_A_peak", "acc_B_final", "acc_A_final", "forgetting_A", "train_loss"}


def test_registered_with_every_preset():
    exp = get_experiment("continual_context")
    assert exp is cc.EXPERIMENT and set(exp.presets) >= {"test", "quick", "standard", "full"}
    keys = set(exp.presets["quick"])
    assert all(set(config) == keys for config in exp.presets.values())


def test_cells_run_and_are_deterministic():
    config = cc.PRESETS["test"]
    for cell in ("transformer", "mlp", "hope1", "hope3_steps"):
        first, second = (cc.run_cell(config, cell, 0, CPU) for _ in range(2))
        assert set(first) == KEYS and first == second, cell
        assert first["forgetting_A"] == pytest.approx(first["acc_A_peak"] - first["acc_A_final"])


def test_the_cells_are_the_models_they_name():
    config, vocab = cc.PRESETS["test"], cc.task_of(cc.PRESETS["test"], 0).vocab_size
    hope2 = cc.make(config, "hope2", vocab, 0)
    assert hope2.blocks[0].channel.cms.periods == config["periods"][:2]
    assert hope2.blocks[0].channel.cms.config.clock == "tokens"
    assert cc.make(config, "hope3_steps", vocab, 0).blocks[0].channel.cms.config.clock == "steps"
    assert not hasattr(cc.make(config, "mlp", vocab, 0).blocks[0].channel, "cms")


class Oracle(torch.nn.Module):
    """Logits that put all mass on each position's target (or on token 0 where nothing is scored)."""

    def __init__(self, task, wrong_phase: str | None = None):
        super().__init__()
        self.task, self.wrong = task, wrong_phase

    def forward(self, x):
        _, y = self.task.batch(x.shape[0], "test", 0)
        target = y.clamp_min(0)
        if self.wrong is not None:
            examples = self.task.phases[self.wrong]
            target[:, 4 * examples.start : 4 * examples.stop] += 1  # a wrong answer in that phase
        return torch.nn.functional.one_hot(target, self.task.vocab_size).float(), None


def test_phase_accuracy_scores_each_phase_on_its_own():
    task = cc.task_of(cc.PRESETS["quick"], 0)
    assert cc.phase_accuracy(Oracle(task), task, 16, CPU) == {"A": 100.0, "B": 100.0, "queries": 100.0}
    forgot = cc.phase_accuracy(Oracle(task, "queries"), task, 16, CPU)
    assert forgot == {"A": 100.0, "B": 100.0, "queries": 0.0}


def _means(forgetting: dict[str, float]) -> dict:
    return {cell: {"acc_A_peak": 90.0, "acc_A_final": 90.0 - f, "forgetting_A": f, "acc_B_final": 90.0}
            for cell, f in forgetting.items()}


def test_verdicts_follow_the_data():
    good = cc.verdicts(_means({"transformer": 60.0, "mlp": 40.0, "hope1": 20.0, "hope2": 10.0, "hope3": 2.0,
                               "hope3_steps": 30.0}))
    assert len(good) == 4 and [c.verdict for c in good] == ["reproduced"] * 4, [(c.claim, c.ours) for c in good]
    bad = cc.verdicts(_means({"transformer": 0.0, "mlp": 0.0, "hope1": 20.0, "hope2": 30.0, "hope3": 60.0,
                              "hope3_steps": 0.0}))
    assert [c.verdict for c in bad] == ["not at this scale"] * 4
    assert cc.verdicts({})[-1].ours is None
    unlearned = _means({"hope3": 0.0, "hope3_steps": 30.0})
    unlearned["hope3"]["acc_A_peak"] = 25.0  # near chance: nothing was learned, so nothing to forget
    assert cc.verdicts(unlearned)[-1].verdict == "not at this scale"


@pytest.mark.parametrize("change, match", [
    ({"models": ("hope9",)}, "hope9"),
    ({"steps": 0}, "steps=0"),
    ({"periods": (16, 32)}, "periods"),
    ({"shared": 2.0}, "shared=2.0"),
    ({"lr": 0.0}, "lr=0.0"),
])
def test_check_refuses_bad_values(change, match):
    with pytest.raises((UsageError, ValueError), match=match):
        cc.check({**cc.PRESETS["test"], **change})
