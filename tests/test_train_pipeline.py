"""bilipop.train.pipeline: GPipe over CPU devices computes exactly what the plain model computes (the key
guarantee of the pipeline), with dropout on too, over 1, 2 or 3 stages, and its cost balance is deterministic."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import same_weights, without_seconds  # noqa: E402
from safetensors.torch import load_file

from bilipop.errors import DeviceError
from bilipop.models.factory import create_model
from bilipop.train.pipeline import build_pipeline, check_balance, check_chunks, layer_costs, parse_devices, partition
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TITLES = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"] * 4


def _inputs(built, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, built.image_size, built.image_size, generator=g) if built.image_size else None
    enc = built.tokenizer(TITLES[:n], padding=True, return_tensors="pt") if built.tokenizer else None
    ids = enc["input_ids"] if enc else None
    mask = enc["attention_mask"] if enc else None
    if mask is not None:
        mask[1, -2:] = 0  # padding in some rows, so that the additive mask matters
    labels = torch.randint(0, 5, (n,), generator=g)
    return built.model.pack(images, ids, mask), labels


def _loss_and_grads(module, params, inputs, labels):
    out = module(inputs)
    logits = out[0] if isinstance(out, tuple) else out
    loss = torch.nn.functional.cross_entropy(logits, labels.to(logits.device))
    loss.backward()
    return loss.item(), [p.grad.detach().cpu().clone() for p in params]


TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0)  # dropout stays at its default, 0.1


@pytest.mark.parametrize("n_devices", [2, 3])
@pytest.mark.parametrize("checkpoint", ["never", "except_last", "always"])
@pytest.mark.parametrize("vision,text,w", [("vit", "bert", 0.75), ("vgg", "rnn", 0.5)])
def test_gpipe_matches_plain_model(n_devices, checkpoint, vision, text, w):
    built = create_model(vision=vision, text=text, vit="tiny", bert="tiny", vit_weight=w, titles=TITLES, dropout=0.0)
    plain = built.model
    piped_model = copy.deepcopy(plain)
    inputs, labels = _inputs(built)
    ref_loss, ref_grads = _loss_and_grads(plain, list(plain.parameters()), inputs, labels)

    balance = [1] * (n_devices - 1) + [len(piped_model) - (n_devices - 1)]
    gpipe = build_pipeline(piped_model, ["cpu"] * n_devices, chunks=4, balance=balance, checkpoint=checkpoint,
                           sample=inputs)
    loss, grads = _loss_and_grads(gpipe, list(piped_model.parameters()), inputs, labels)

    assert abs(loss - ref_loss) < 1e-5
    assert len(grads) == len(ref_grads)
    worst = max((g - r).abs().max().item() for g, r in zip(grads, ref_grads, strict=True))
    assert worst < 1e-5
    assert any(r.abs().max() > 0 for r in ref_grads)  # the comparison is not between zeros


@pytest.mark.parametrize("w", [0.0, 1.0])
def test_gpipe_single_branch_models(w):
    built = create_model(vit="tiny", bert="tiny", vit_weight=w, titles=TITLES, dropout=0.0)
    piped_model = copy.deepcopy(built.model)
    inputs, labels = _inputs(built)
    ref_loss, ref_grads = _loss_and_grads(built.model, list(built.model.parameters()), inputs, labels)
    gpipe = build_pipeline(piped_model, ["cpu", "cpu"], chunks=2, balance=None, checkpoint="except_last",
                           sample=inputs)
    loss, grads = _loss_and_grads(gpipe, list(piped_model.parameters()), inputs, labels)
    assert abs(loss - ref_loss) < 1e-5
    assert max((g - r).abs().max().item() for g, r in zip(grads, ref_grads, strict=True)) < 1e-5


def test_device_and_batch_checks():
    with pytest.raises(DeviceError, match="more GPUs"):
        parse_devices(torch.cuda.device_count() + 1, None)
    assert parse_devices(None, "cpu,cpu") == [torch.device("cpu")] * 2
    with pytest.raises(DeviceError, match="not a device"):
        parse_devices(None, "tpu9,cpu")
    assert check_chunks(None, 16, 2) == 8
    with pytest.raises(DeviceError, match="does not split"):
        check_chunks(None, 10, 2)
    with pytest.raises(DeviceError, match="summing to the model's 6"):
        check_balance([1, 1], 6, 2)
    with pytest.raises(DeviceError, match="one per device"):
        check_balance([3, 3], 6, 3)
    assert check_balance([2, 4], 6, 2) == [2, 4]


def test_mixed_precision_is_entered_inside_the_pipeline_stages():
    # GPipe runs partitions in worker threads, where an autocast around the call has no effect: --precision
    # must reach every stage through set_autocast. Checked on CPU with bf16, the dtype every layer sees.
    built = create_model(vit="tiny", bert="tiny", vit_weight=0.5, titles=TITLES, dropout=0.0)
    inputs, labels = _inputs(built)
    seen = []
    for module in built.model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    gpipe = build_pipeline(built.model, ["cpu", "cpu"], chunks=2, balance=[3, 3], checkpoint="except_last",
                           sample=inputs)
    gpipe(inputs)
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    built.model.set_autocast(("cpu", torch.bfloat16))
    logits = gpipe(inputs)[0]
    assert set(seen) == {torch.bfloat16}  # every linear layer of every stage ran in bf16
    assert logits.dtype == torch.float32  # the head hands the loss full-precision logits
    torch.nn.functional.cross_entropy(logits, labels).backward()


def test_processes_on_one_machine_get_disjoint_gpus():
    # torchrun --nproc_per_node 2 on an 8-GPU machine: each process pipelines over its own half
    cuda = [torch.device("cuda", i) for i in range(8)]
    assert parse_devices(None, None, local_rank=0, local_world_size=2, available=8) == cuda[:4]
    assert parse_devices(None, None, local_rank=1, local_world_size=2, available=8) == cuda[4:]
    assert parse_devices(2, None, local_rank=3, local_world_size=4, available=8) == cuda[6:]
    # one process per machine (the multi-node layout) keeps cuda:0..N-1
    assert parse_devices(4, None, available=8) == cuda[:4]
    with pytest.raises(DeviceError, match="4 processes on this machine with --gpus 4 each need 16 GPUs"):
        parse_devices(4, None, local_rank=0, local_world_size=4, available=8)
    with pytest.raises(DeviceError, match="use torchrun --nproc_per_node 2 or fewer"):
        parse_devices(None, None, local_rank=0, local_world_size=4, available=2)
    # CPU-only machines and explicit --devices are unaffected
    assert parse_devices(None, None, local_rank=1, local_world_size=2, available=0) == [torch.device("cpu")]
    assert parse_devices(None, "cpu,cpu", local_rank=1, local_world_size=2, available=0) == [torch.device("cpu")] * 2


@pytest.mark.slow  # four trainings; the gradient check below proves the same in one step
def test_dropout_does_not_depend_on_the_stages_or_the_balance(train_data, tmp_path):
    common = dict(epochs=1, chunks=4, **TINY)
    two = train(TrainConfig(devices="cpu,cpu", **common), data=train_data, out=tmp_path / "two")
    three = train(TrainConfig(devices="cpu,cpu,cpu", **common), data=train_data, out=tmp_path / "three")
    other_cut = train(TrainConfig(devices="cpu,cpu", balance=[1, 5], **common), data=train_data, out=tmp_path / "cut")
    assert same_weights(tmp_path / "two", tmp_path / "three")
    assert same_weights(tmp_path / "two", tmp_path / "cut")
    assert (
        without_seconds(two.histories[0])
        == without_seconds(three.histories[0])
        == without_seconds(other_cut.histories[0])
    )
    # One device trains the whole batch at once: the same masks, the sums in another order (float rounding that
    # Adam's step, at lr 1e-3, magnifies to ~1e-5).
    plain = train(TrainConfig(devices="cpu", **{**common, "chunks": None}), data=train_data, out=tmp_path / "plain")
    a, b = load_file(str(tmp_path / "plain" / "model.safetensors")), load_file(str(tmp_path / "two" /
                                                                                   "model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    assert plain.histories[0][0]["train_loss"] == pytest.approx(two.histories[0][0]["train_loss"], abs=1e-5)


def test_gpipe_over_one_two_and_three_stages_gives_the_same_gradients_with_dropout():
    titles = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"] * 2
    built = create_model(vit="tiny", bert="tiny", vit_weight=0.5, titles=titles, dropout=0.3)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 32, 32, generator=g)
    enc = built.tokenizer(titles[:8], padding=True, return_tensors="pt")
    labels = torch.randint(0, 5, (8,), generator=g)
    grads = []
    for k in (1, 2, 3):
        model = copy.deepcopy(built.model)
        model.set_noise_seed(11)
        inputs = model.pack(images, enc["input_ids"], enc["attention_mask"], torch.arange(40, 48))
        cut = [1] * (k - 1) + [len(model) - (k - 1)]
        gpipe = build_pipeline(model, ["cpu"] * k, chunks=4, balance=cut, checkpoint="except_last", sample=inputs)
        gpipe.train()
        torch.nn.functional.cross_entropy(gpipe(inputs)[0], labels).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[2], strict=True))
    # and dropout really acted: eval mode gives other gradients
    model = copy.deepcopy(built.model).eval()
    torch.nn.functional.cross_entropy(model.logits(images, enc["input_ids"], enc["attention_mask"]),
                                      labels).backward()
    assert not all(torch.equal(a, p.grad) for a, p in zip(grads[0], model.parameters(), strict=True))


def test_cost_balance_is_deterministic_and_puts_costly_layers_apart():
    built = create_model(vit="tiny", bert="tiny", vit_weight=0.5, titles=["物理 入门", "历史"], dropout=0.1)
    enc = built.tokenizer(["物理 入门", "历史"], padding=True, return_tensors="pt")
    sample = built.model.pack(torch.zeros(2, 3, 32, 32), enc["input_ids"], enc["attention_mask"])
    costs = layer_costs(built.model, sample)
    assert costs == layer_costs(built.model, sample) and len(costs) == len(built.model) and min(costs) > 0
    assert partition([1, 10, 10, 10, 10, 1, 1, 1, 1, 2], 2) == [3, 7]
    assert partition([5] * 6, 3) == [2, 2, 2]
    assert partition([100, 1, 1, 1], 2) == [1, 3]
