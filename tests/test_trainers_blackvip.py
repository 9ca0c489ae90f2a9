"""BlackVIP (vr/coordinator.py, trainers/blackbox_methods.py) on ToyColors with test-tiny.

- the decoder has the official shapes: 9,920 learned entries at z = 768 (the facts sheet's count), an S x S
  prompt from a (SRC_DIM / g^2, g, g) cube, one clear error for a SRC_DIM or image size it cannot use;
- the prompted image is clamp(x + P_EPS * prompt) to the normalised [0, 1] range, per channel;
- trained through the black box: the decoder is all SPSA-GC moves (trigger, convolutions, BatchNorm), the
  queries are 2 SP_AVG per image per step, the encoder is a separate frozen copy (no storage shared with the
  box's CLIP, never changed, not in the checkpoint), and results.json says which encoder it was.
"""
import json

import pytest
import torch

import train
from tests.blackbox_helpers import hidden_clip
from tests.toy_runs import toy_argv
from tests.trainer_fixtures import make_trainer, toy_cfg, toy_descriptions  # noqa: F401  (fixture)
from vr.coordinator import CoordinatorDecoder, CoordinatorPrompt, decoder_grid, frozen_image_tower


def test_the_decoder_has_the_official_shapes():
    decoder = CoordinatorDecoder(768, 1568, 224)
    assert sum(p.numel() for p in decoder.parameters()) == 9920  # baselines-2.md: trigger and BN affine included
    assert decoder.trigger.shape == (1, 800)
    assert decoder(torch.randn(2, 768)).shape == (2, 3, 224, 224)
    assert [m.out_channels for m in decoder.body if isinstance(m, torch.nn.ConvTranspose2d)] == \
        [64, 64, 64, 32, 32, 32, 32, 16, 3]
    assert decoder_grid(224) == 7 and decoder_grid(64) == 2


@pytest.mark.parametrize("z_dim,src_dim,size,message", [
    (768, 1500, 224, r"must be 49 x C \(7 x 7"),
    (1568, 1568, 224, "larger than the encoder's 1568 features"),
    (64, 1568, 200, "multiple of 32; got 200"),
    (512, 1176, 224, r"channels dividing 64 or a multiple of 64 .* e\.g\. 784"),  # 24 channels: torch would fail
])
def test_a_decoder_it_cannot_build_is_one_clear_error(z_dim, src_dim, size, message):
    with pytest.raises(ValueError, match=message):
        CoordinatorDecoder(z_dim, src_dim, size)


@pytest.mark.parametrize("z_dim", [64, 512, 768, 1568])
def test_the_suggested_src_dim_builds(z_dim):
    import re

    with pytest.raises(ValueError) as err:
        CoordinatorDecoder(z_dim, z_dim, 224)  # never larger than z: always refused, with a suggestion
    suggested = int(re.search(r"e\.g\. (\d+)", str(err.value)).group(1))
    assert CoordinatorDecoder(z_dim, suggested, 224)(torch.randn(1, z_dim)).shape == (1, 3, 224, 224)


@pytest.fixture(scope="module")
def tiny_encoder():
    from backbones import load_clip

    return frozen_image_tower(load_clip("test-tiny"))


def test_the_prompted_image_is_clamped_to_the_normalised_unit_range(tiny_encoder):
    torch.manual_seed(0)
    size = tiny_encoder.image_size
    prompt = CoordinatorPrompt(size, tiny_encoder.mean, tiny_encoder.std, encoder=tiny_encoder, p_eps=50.0)
    x01 = torch.rand(3, 3, size, size)
    out = prompt(x01)
    low, high = prompt.low.view(1, 3, 1, 1), prompt.high.view(1, 3, 1, 1)
    assert torch.all(out >= low) and torch.all(out <= high)
    assert torch.isclose(out, low.expand_as(out)).any() and torch.isclose(out, high.expand_as(out)).any()
    calls = []
    prompt._encode = lambda x: calls.append(1) or CoordinatorPrompt._encode(prompt, x)
    x01 = torch.rand(3, 3, size, size)
    prompt(x01), prompt(x01)
    assert len(calls) == 1  # the 2 SP_AVG queries of a step encode their batch once
    x01.mul_(0.5)  # a changed tensor is encoded again
    prompt(x01)
    assert len(calls) == 2
    prompt.p_eps = 0.0  # no prompt: the normalised image itself
    assert torch.allclose(prompt(x01), prompt.normalise(x01), atol=1e-6)
    assert [n for n, _ in prompt.named_parameters()][0] == "decoder.trigger"
    assert not any("encoder" in k for k in prompt.state_dict())  # the frozen encoder is never saved


def test_the_coordinator_is_only_built_with_an_encoder(toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    code = train.main(toy_argv("VP", toy_root, tmp_path, toy_descriptions, "TRAINER.VP.PROMPT", "coordinator"))
    err = capsys.readouterr().err
    assert code == 1 and err.count("ERROR:") == 1 and "only the BlackVIP trainer builds" in err
    code = train.main(toy_argv("BlackVIP", toy_root, tmp_path / "b", toy_descriptions,
                               "TRAINER.BLACKVIP.PROMPT", "padding"))
    err = capsys.readouterr().err
    assert code == 1 and err.count("ERROR:") == 1 and "must be 'coordinator'" in err


@pytest.fixture(scope="module")
def blackvip(toy_root, toy_descriptions, tmp_path_factory):
    cfg = toy_cfg("BlackVIP", toy_root, tmp_path_factory.mktemp("blackvip"), toy_descriptions, epochs=2,
                  opts=["OPTIM.LR", 1.0])
    t = make_trainer(cfg)
    clip = hidden_clip(t.clip)
    before = {k: v.clone() for k, v in t.model.prompts.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in t.model.prompts.encoder.model.state_dict().items()}
    t.train()
    return t, clip, before, encoder_before


def test_blackvip_trains_its_decoder_through_the_black_box_with_the_queries_its_schedule_implies(blackvip):
    t, clip, before, encoder_before = blackvip
    record = t.extra_results()["black_box"]
    assert record["optimizer"] == "spsa_gc" and record["loss"] == "ce"
    assert record["train_image_queries_per_epoch"] == [8 * 10, 8 * 10]  # 8 images x 2 SP_AVG
    assert record["steps"] == 6 and record["directions_dimension"] == t.model.prompts.num_trainable_entries()
    after = t.model.prompts.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert {n for n, _ in t.model.named_parameters()} == {f"prompts.{k}" for k, _ in
                                                          t.model.prompts.named_parameters()}
    assert {f"decoder.{k}" for k, _ in t.model.prompts.decoder.named_parameters()} <= moved  # every learned entry
    assert any(k.endswith("running_mean") for k in moved)  # BatchNorm ran in train mode during the queries

    encoder = t.model.prompts.encoder.model  # a separate frozen copy: nothing shared with the box, unchanged
    clip_storage = {p.untyped_storage().data_ptr() for p in list(clip.parameters()) + list(clip.buffers())}
    assert not any(p.untyped_storage().data_ptr() in clip_storage for p in encoder.parameters())
    assert all(torch.equal(v, encoder_before[k]) for k, v in encoder.state_dict().items())
    assert all(p.grad is None for p in list(clip.parameters()) + list(encoder.parameters()))
    coordinator = t.extra_results()["vr"]["coordinator"]
    assert coordinator == {"encoder": "test-tiny", "encoder_weights": "", "encoder_input": "the prompt's input",
                           "z_dim": coordinator["z_dim"], "src_dim": 1568, "p_eps": 1.0,
                           "decoder_entries": t.model.prompts.num_trainable_entries()}


@pytest.mark.slow  # train.py twice (the registry test reloads every trainer in the fast loop)
def test_a_blackvip_run_records_its_encoder_and_reloads_its_decoder(toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    run = tmp_path / "run"
    assert train.main(toy_argv("BlackVIP", toy_root, run, toy_descriptions, "OPTIM.LR", 1.0)) == 0
    out = capsys.readouterr().out
    assert "BlackVIP coordinator: loading its frozen image encoder test-tiny" in out
    results = json.loads((run / "results.json").read_text())
    assert results["vr"]["prompt"] == "coordinator" and results["vr"]["coordinator"]["encoder"] == "test-tiny"
    state = torch.load(run / "vr_model" / "model.pth.tar-2", weights_only=False)["state_dict"]
    assert "prompts.decoder.trigger" in state and not any("encoder" in k for k in state)
    ev = tmp_path / "ev"
    assert train.main(toy_argv("BlackVIP", toy_root, ev, toy_descriptions, "OPTIM.LR", 1.0,
                               extra=["--eval-only", "--model-dir", str(run), "--load-epoch", "2"])) == 0
    assert json.loads((ev / "results.json").read_text())["accuracy"] == results["accuracy"]
