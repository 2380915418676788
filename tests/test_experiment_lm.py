"""The ``lm`` experiment (NL Table 2, byte-level LM on the KJV): end to end, claims, checks."""

from __future__ import annotations

import math

import pytest

from hope_lite.experiments import lm
from hope_lite.experiments.runner import run_experiment


def test_the_test_preset_runs_end_to_end(tmp_path):
    result = run_experiment("lm", "test", seeds=(0,), out_dir=tmp_path, progress=False)
    assert [row["cell"] for row in result.rows] == list(lm.MODELS)
    expected = {"train_bits_per_byte", "val_bits_per_byte", "test_bits_per_byte", "val_ppl",
                "test_ppl", "test_loss", "loss@pos<8", "loss@pos<16", "loss@pos<32"}  # fmt: skip
    for row in result.rows:
        metrics = row["metrics"]
        assert set(metrics) == expected and all(math.isfinite(v) for v in metrics.values())
        assert metrics["test_bits_per_byte"] == pytest.approx(metrics["test_loss"] / math.log(2))
        assert metrics["test_ppl"] == pytest.approx(math.exp(metrics["test_loss"]))
        assert 0 < metrics["test_bits_per_byte"] < 9  # near-uniform over 256 bytes is 8 bits
    assert len(result.claims) == 4
    assert all(c.ours is not None and math.isfinite(c.ours) for c in result.claims)
    assert result.paths["report"].exists()


def means(**losses: float) -> dict:
    """Seed means with the given test losses, and HOPE's loss by position."""
    out = {cell: {"test_loss": loss, "test_ppl": math.exp(loss)} for cell, loss in losses.items()}
    out.setdefault("hope", {}).update({"loss@pos<16": 2.0, "loss@pos<64": 1.9, "loss@pos<128": 1.5})
    return out


def test_orderings_are_judged_on_the_perplexity_margin():
    claims = {c.claim: c for c in lm.verdicts(means(hope=1.5, lmm=1.6, transformer=1.505))}
    hope_tf = claims["HOPE has lower perplexity than the Transformer"]
    assert hope_tf.ours == pytest.approx(100 * (1 - math.exp(-0.005))) and hope_tf.verdict == "partly"
    assert claims["HOPE has lower perplexity than Titans (LMM)"].verdict == "reproduced"
    assert claims["Titans (LMM) has lower perplexity than the Transformer"].verdict == "not at this scale"
    position = claims["HOPE's loss falls with the position in the context"]
    assert position.ours == pytest.approx(100 * (1 - math.exp(1.5 - 2.0))) and position.verdict == "reproduced"
    assert all(c.paper is None for c in claims.values())


def test_claims_of_cells_not_run_are_left_out():
    claims = lm.verdicts(means(hope=1.5, transformer=1.6))
    assert [c.claim for c in claims] == ["HOPE has lower perplexity than the Transformer",
                                         "HOPE's loss falls with the position in the context"]


@pytest.mark.parametrize("key, value, fragment", [
    ("buckets", (16, 8), "buckets=8 must be an integer in 17..127"),
    ("buckets", (16, 128), "buckets=128 must be an integer in 17..127"),
    ("seq_len", 4000, "seq_len=4000 must be an integer in 1..3275"),
    ("source", "web", "source='web' is not allowed; allowed: 'slice', 'full'"),
    ("eval_batches", 0, "eval_batches=0 must be an integer >= 1"),
])  # fmt: skip
def test_check_names_the_key_value_and_what_is_allowed(key, value, fragment):
    config = dict(lm.PRESETS["quick"], **{key: value})
    with pytest.raises(ValueError) as error:
        lm.check(config)
    assert fragment in str(error.value)


def test_presets_share_keys_and_pass_their_checks_without_the_network():
    for name, preset in lm.PRESETS.items():
        lm.check(preset)  # the full source's splits follow from its pinned size: nothing is loaded
        assert lm.cells(preset) == list(lm.MODELS), name
    assert lm.bucket_names(lm.PRESETS["standard"]) == ["loss@pos<16", "loss@pos<64", "loss@pos<128"]
    assert {lm.PRESETS[p]["source"] for p in ("test", "quick")} == {"slice"}
