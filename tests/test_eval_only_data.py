"""An evaluation-only run does not decode the training split, and a test pass prints progress (issue 19)."""
from tests.trainer_fixtures import make_trainer, toy_cfg, toy_descriptions  # noqa: F401  (fixture)


def test_the_training_cache_is_built_when_training_starts_not_before(toy_root, toy_descriptions, tmp_path,  # noqa: F811
                                                                     capsys, monkeypatch):
    monkeypatch.setenv("VR_PROGRESS_SECONDS", "0")  # a line after every batch
    cfg = toy_cfg("AR", toy_root, tmp_path / "run", toy_descriptions, epochs=1,
                  opts=["DATALOADER.TEST.BATCH_SIZE", "4"])
    trainer = make_trainer(cfg)
    assert trainer.train_loader_x.dataset.cache is None  # --eval-only stops here: nothing decoded
    trainer.test()
    out = capsys.readouterr().out
    assert "decoded training images" not in out
    lines = [ln for ln in out.splitlines() if ln.startswith("Evaluating *test*: batch ")]
    assert [ln.split(" (")[0] for ln in lines] == [f"Evaluating *test*: batch {i}/4" for i in range(1, 5)]
    assert "(4 images," in lines[0] and "(16 images," in lines[-1]
    trainer.train()
    assert "Cached 8 decoded training images" in capsys.readouterr().out
    assert len(trainer.train_loader_x.dataset.cache) == 8
