"""GPipe over CPU devices computes exactly what the plain model computes (the key guarantee of the pipeline)."""

from __future__ import annotations

import copy

import pytest
import torch

from bilipop.errors import DeviceError
from bilipop.models.registry import create_model
from bilipop.train.pipeline import build_pipeline, check_balance, check_chunks, parse_devices

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

