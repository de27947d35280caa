"""Keyed dropout masks: a function of (seed, layer, call, row, element) alone."""

import torch

from bilipop.models import noise
from bilipop.models.noise import KeyedDropout, keep_mask


def test_a_rows_mask_does_not_depend_on_its_batch_or_the_block_size(monkeypatch):
    rows = torch.arange(100, 116)
    whole = keep_mask(torch.Size([16, 4, 300]), rows, 7, 0.25)
    assert abs(whole.float().mean().item() - 0.75) < 0.02
    assert torch.equal(whole[5:9], keep_mask(torch.Size([4, 4, 300]), rows[5:9], 7, 0.25))
    monkeypatch.setattr(noise, "BLOCK_ELEMENTS", 1000)  # one row per block
    assert torch.equal(whole, keep_mask(torch.Size([16, 4, 300]), rows, 7, 0.25))
    assert not torch.equal(whole, keep_mask(torch.Size([16, 4, 300]), rows, 8, 0.25))  # another base
    agree = (whole[0] == whole[1]).float().mean().item()
    assert abs(agree - (0.75 ** 2 + 0.25 ** 2)) < 0.05  # two rows' masks are independent


def test_keyed_dropout_replaces_module_and_functional_dropout_in_training_only():
    x = torch.ones(6, 40)
    with KeyedDropout(3, 2, torch.arange(6.0)):
        a = torch.nn.Dropout(0.5).train()(x)
        b = torch.nn.functional.dropout(x, p=0.5, training=True)
        same = torch.nn.functional.dropout(x, p=0.5, training=False)
    with KeyedDropout(3, 2, torch.arange(6.0)):
        again = torch.nn.Dropout(0.5).train()(x)
    assert torch.equal(a, again)  # the same call in the same context: the same mask
    assert not torch.equal(a, b)  # the second call of a context draws another mask
    assert set(a.unique().tolist()) == {0.0, 2.0} and torch.equal(same, x)
