"""The black-box trainers (BAR, BlackBoxAR, BlackBoxDVP_CLS) on ToyColors with test-tiny.

- nothing of CLIP is reachable from a black-box trainer: no CLIP parameter or buffer in any attribute (walked
  recursively), the box refuses every other attribute, a trainer that reaches for the model or backpropagates
  fails loudly, and training leaves CLIP's weights and gradients untouched;
- the recorded queries equal what the schedule implies (images x prompts x (q + 1) or 2 sp_avg; DVP's
  statistics epoch: images x prompts), per epoch and in total, in results.json;
- a query budget stops the run cleanly after the last epoch that fits (message, checkpoint, results.json
  says so) and a rerun with a larger budget continues it to the result of an uninterrupted run;
- kill -9 then resume keeps the count (slow).
"""
import gc
import json
import sys

import pytest
import torch
import torch.nn as nn

import train
from tests.blackbox_helpers import hidden_clip
from tests.conftest import kill_and_resume
from tests.toy_runs import toy_argv
from tests.trainer_fixtures import make_trainer, toy_cfg, toy_descriptions  # noqa: F401  (fixture)
from vr.blackbox import BlackBoxAccessError, BlackBoxCLIP

OPTS = ["OPTIM.LR", 1.0]


def reachable_tensors(root):
    """Every tensor reachable from ``root`` through attributes, slots, containers and module parameters
    (functions are not entered: the box keeps its model in closures, and that is the point)."""
    seen, found, stack = set(), [], [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or callable(obj) and not isinstance(obj, (nn.Module, BlackBoxCLIP)) and \
                not hasattr(obj, "__dict__"):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
            continue
        if isinstance(obj, (str, bytes, int, float, bool, type(None), type)) or type(obj).__name__ == "function":
            continue
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        if isinstance(obj, nn.Module):
            stack.extend(obj.parameters())
            stack.extend(obj.buffers())
        for slot in getattr(type(obj), "__slots__", ()):
            if not slot.startswith("_"):  # the box's public slots (ledger, geometry)
                stack.append(getattr(obj, slot, None))
        stack.extend(getattr(obj, "__dict__", {}).values())
    return found


@pytest.fixture(scope="module")
def trained(toy_root, toy_descriptions, tmp_path_factory):
    runs = {}

    def run(name, epochs=2, opts=()):
        key = (name, epochs, tuple(opts))
        if key not in runs:
            cfg = toy_cfg(name, toy_root, tmp_path_factory.mktemp(name), toy_descriptions, epochs=epochs,
                          opts=OPTS + list(opts))
            t = make_trainer(cfg)
            clip = hidden_clip(t.clip)
            before = {k: v.clone() for k, v in clip.state_dict().items()}
            t.train()
            runs[key] = (t, clip, before)
        return runs[key]
    return run


@pytest.mark.parametrize("name", ["BlackBoxAR", "BlackBoxDVP_CLS"])
def test_no_parameter_or_gradient_of_clip_is_reachable(trained, name):
    t, clip, before = trained(name, epochs=2 + (name == "BlackBoxDVP_CLS"))
    clip_storage = {p.untyped_storage().data_ptr() for p in list(clip.parameters()) + list(clip.buffers())}
    tensors = reachable_tensors(t)
    assert any(x is t.model.prompts.delta for x in tensors)  # the walk does reach the trainer's tensors
    leaked = [tuple(x.shape) for x in tensors if x.untyped_storage().data_ptr() in clip_storage]
    assert not leaked, f"CLIP tensors reachable from the trainer: {leaked}"
    assert [n for n, _ in t.model.named_parameters()] == ["prompts.delta"]
    for name_ in ("model", "backbone", "visual", "encode_image", "logit_scale"):
        with pytest.raises(BlackBoxAccessError):
            getattr(t.clip, name_)
    assert all(p.grad is None for p in clip.parameters())
    assert all(torch.equal(v, before[k]) for k, v in clip.state_dict().items())  # CLIP never changed
    assert not torch.equal(t.model.prompts.delta, torch.zeros_like(t.model.prompts.delta))  # the prompt did


def test_a_trainer_that_backpropagates_or_reaches_for_clip_fails_loudly(trained):
    t, _, _ = trained("BlackBoxAR", epochs=1)  # its own run: the queries below are charged to it
    batch = next(iter(t.train_loader_x))
    image, label = t.parse_batch_train(batch)[:2]
    t.model.train()
    logits = t.model(image)  # scores come back without history, even with grad enabled
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.nn.functional.cross_entropy(logits, label).backward()
    assert t.model.prompts.delta.grad is None
    with pytest.raises(BlackBoxAccessError, match="no model, parameters or gradients"):
        t.clip.model.parameters()
    assert not any(isinstance(o, BlackBoxCLIP) for o in gc.get_referents(t.model.prompts))


@pytest.mark.parametrize("name,epochs,per_epoch", [
    ("BAR", 2, [8 * 6, 8 * 6]),  # 8 images x (q + 1 = 6)
    ("BlackBoxAR", 2, [8 * 10, 8 * 10]),  # 8 images x 2 sp_avg (10)
    ("BlackBoxDVP_CLS", 3, [8 * 2, 8 * 2 * 10, 8 * 2 * 10]),  # statistics epoch: 8 x v (2); then x 10
])
def test_the_recorded_queries_are_what_the_schedule_implies(trained, name, epochs, per_epoch):
    t, _, _ = trained(name, epochs=epochs)
    record = t.extra_results()["black_box"]
    assert record["train_image_queries_per_epoch"] == per_epoch
    assert record["train_image_queries"] == sum(per_epoch)
    assert [t.epoch_queries(e) for e in range(epochs)] == per_epoch  # what the budget check uses
    assert record["steps"] == 3 * (epochs - t.STATS_EPOCHS)  # batches of 3, 3, 2
    assert record["eval_image_queries_this_process"] == 16 * t.num_prompts()  # the final test: 16 images


def run_train(argv, capsys):
    code = train.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return captured.out


@pytest.mark.slow
def test_a_budget_stops_the_run_and_a_rerun_continues_it_exactly(toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    def argv(out, budget, extra=()):
        return toy_argv("BAR", toy_root, out, toy_descriptions, "OPTIM.MAX_EPOCH", 3, "OPTIM.LR", 1.0,
                        "DATALOADER.TRAIN_X.BATCH_SIZE", 3, "TRAINER.BLACKBOX.QUERY_BUDGET", budget, extra=extra)

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    run_train(argv(whole, 0), capsys)
    out = run_train(argv(stopped, 100), capsys)  # 48 per epoch: two epochs fit
    assert "Query budget: 0 of 100 training queries used before epoch 1; epochs up to 2 fit, epoch 3 needs 48" in out
    assert "raise TRAINER.BLACKBOX.QUERY_BUDGET and rerun with the same OUTPUT_DIR and --overwrite" in out
    first = json.loads((stopped / "results.json").read_text())["black_box"]
    assert first["stopped_by_budget"] and first["budget_stop"]["epochs_done"] == 2
    assert first["train_image_queries"] == 96 and first["budget"] == 100
    assert (stopped / "vr_model" / "model.pth.tar-2").is_file()

    # the budget is not part of the protocol: the run resumes (a results.json is rewritten only with --overwrite)
    out = run_train(argv(stopped, 200, extra=["--overwrite"]), capsys)
    assert "Previous epoch: 2" in out and "Query budget" not in out
    done, ref = (json.loads((d / "results.json").read_text()) for d in (stopped, whole))
    assert not done["black_box"]["stopped_by_budget"]
    assert done["black_box"]["train_image_queries_per_epoch"] == ref["black_box"]["train_image_queries_per_epoch"]
    assert done["accuracy"] == ref["accuracy"]
    a, b = (torch.load(d / "vr_model" / "model.pth.tar-3", weights_only=False) for d in (whole, stopped))
    assert torch.equal(a["state_dict"]["prompts.delta"], b["state_dict"]["prompts.delta"])
    la, lb = a["optimizer"]["ledger"], b["optimizer"]["ledger"]
    assert la["train_per_epoch"] == lb["train_per_epoch"] and la["image_text_pairs"] == lb["image_text_pairs"]
    assert lb["text_queries"] == la["text_queries"] + 4  # the resumed process embedded the 4 class texts again


def test_bad_black_box_settings_are_one_error_line(toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    argv = toy_argv("BlackBoxAR", toy_root, tmp_path, toy_descriptions, "TRAINER.BLACKBOX.OPTIMIZER", "adam")
    code = train.main(argv)
    err = capsys.readouterr().err
    assert code == 1 and err.count("ERROR:") == 1 and "Unknown TRAINER.BLACKBOX.OPTIMIZER 'adam'" in err


@pytest.mark.slow  # three train.py subprocesses
def test_kill9_then_resume_keeps_the_query_count(toy_root, toy_descriptions, tmp_path):
    def argv(out):
        return [sys.executable, "train.py"] + toy_argv("BlackBoxDVP_CLS", toy_root, out, toy_descriptions,
                                                       "OPTIM.MAX_EPOCH", 3, "OPTIM.LR", 1.0,
                                                       "DATALOADER.TRAIN_X.BATCH_SIZE", 3)
    whole, killed, resumed = kill_and_resume(argv, tmp_path)
    a, b = (json.loads((d / "results.json").read_text()) for d in (whole, killed))
    assert b["black_box"]["train_image_queries_per_epoch"] == a["black_box"]["train_image_queries_per_epoch"] \
        == [16, 160, 160]
    assert b["accuracy"] == a["accuracy"]


def test_eval_only_reevaluates_a_black_box_run_and_counts_its_queries(toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    run, ev = tmp_path / "run", tmp_path / "ev"
    common = ("OPTIM.MAX_EPOCH", 2, "OPTIM.LR", 1.0)
    run_train(toy_argv("BlackBoxAR", toy_root, run, toy_descriptions, *common), capsys)
    run_train(toy_argv("BlackBoxAR", toy_root, ev, toy_descriptions, *common,
                       extra=("--eval-only", "--model-dir", str(run), "--load-epoch", "2")), capsys)
    trained, evaluated = (json.loads((d / "results.json").read_text()) for d in (run, ev))
    assert evaluated["accuracy"] == trained["accuracy"]
    assert evaluated["black_box"]["train_image_queries"] == 0  # evaluating spends no training queries
    assert evaluated["black_box"]["eval_image_queries_this_process"] == 16
