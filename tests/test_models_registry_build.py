"""create_model (bilipop.models.registry): branches not built when unused, and pretrained encoders from local files
(a ViT .pth, a BERT save_pretrained folder) cut into the same modules as the original."""

from __future__ import annotations

import pytest
import torch

from bilipop.errors import ModelError
from bilipop.models.factory import create_model
from bilipop.models.vision import ViTSpec, build_vit

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")

TITLES = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"]


def test_unused_branch_is_not_built():
    cover_only = create_model(vit="tiny", bert="tiny", vit_weight=1.0, titles=TITLES)
    title_only = create_model(vit="tiny", bert="tiny", vit_weight=0.0, titles=TITLES)
    cover_names = [n for n, _ in cover_only.model.named_parameters()]
    title_names = [n for n, _ in title_only.model.named_parameters()]
    assert cover_only.tokenizer is None and not any("embeddings" in n or "text" in n for n in cover_names)
    assert title_only.image_size == 0 and not any("patch" in n or "vision" in n for n in title_names)
    ids = title_only.tokenizer(TITLES, padding=True, return_tensors="pt")
    assert title_only.model.logits(None, ids["input_ids"], ids["attention_mask"]).shape == (5, 5)
    assert cover_only.model.logits(torch.zeros(2, 3, 32, 32), None, None).shape == (2, 5)


def test_pretrained_vit_from_local_pth(tmp_path):
    spec = ViTSpec(patches=8, dim=64, ff_dim=128, num_heads=1, num_layers=2, image_size=32, out_dim=16)
    torch.manual_seed(5)
    vit = build_vit(spec)
    path = tmp_path / "my_vit.pth"
    torch.save(vit.state_dict(), path)
    # The head count is in neither the shapes nor the names: it must be given, never guessed as dim / 64.
    with pytest.raises(ModelError, match="--vit-heads"):
        create_model(vit=str(path), bert="tiny", vit_weight=0.5, titles=TITLES)
    with pytest.raises(ModelError, match="do not divide"):
        create_model(vit=str(path), bert="tiny", vit_weight=0.5, titles=TITLES, vit_heads=3)
    built = create_model(vit=str(path), bert="tiny", vit_weight=0.5, titles=TITLES, vit_heads=1)
    assert built.arch["vision"]["spec"]["num_heads"] == 1
    # ... or read from a JSON config beside the weights
    (tmp_path / "my_vit.json").write_text('{"num_heads": 4}')
    assert create_model(vit=str(path), bert="tiny", vit_weight=0.5,
                        titles=TITLES).arch["vision"]["spec"]["num_heads"] == 4
    (tmp_path / "my_vit.json").unlink()
    assert built.image_size == 32 and built.arch["out_dim"] == 16
    assert torch.equal(built.model[0].vision_in.patch_embedding.weight, vit.patch_embedding.weight)
    assert torch.equal(built.model[-1].vision_head.fc.weight, vit.fc.weight)
    vit.eval()
    built.model.eval()
    x = torch.randn(2, 3, 32, 32)
    head = built.model[-1]
    state = built.model[0].vision_in(x)
    for stage in built.model[1:3]:
        state = stage.block(state)
    assert torch.allclose(head.vision_head(state), vit(x), atol=1e-6)  # the cut encoder is the same ViT


def test_pretrained_bert_from_save_pretrained_folder(tmp_path):
    from transformers import BertConfig, BertModel

    from bilipop.models.tokenizer import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(TITLES * 3)
    torch.manual_seed(7)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    folder = tmp_path / "my_bert"
    bert.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    built = create_model(vit="tiny", bert=str(folder), vit_weight=0.25, titles=[])
    embeddings = built.model[0].text_in.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, bert.embeddings.word_embeddings.weight)
    assert built.tokenizer.tokenize("物理") == tokenizer.tokenize("物理")
    # The layer-by-layer cut gives BERT's own pooled output.
    bert.eval()
    built.model.eval()
    enc = tokenizer(TITLES, padding=True, return_tensors="pt")
    enc["attention_mask"][0, -1] = 0
    h, mask = built.model[0].text_in(enc["input_ids"], enc["attention_mask"])
    for stage in built.model[3:5]:
        h = stage.block(h, mask)
    pooled = built.model[-1].text_head.pooler(h)
    expected = bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
    assert torch.allclose(pooled, expected, atol=1e-5)
    rnn = create_model(vit="tiny", bert=str(folder), text="rnn", vit_weight=0.0, titles=[])
    assert rnn.arch["text"]["spec"]["vocab_size"] == len(tokenizer)
