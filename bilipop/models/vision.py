"""Cover encoders: the study's ViT (pytorch_pretrained_vit) and its Table 2 alternative, VGG-16.

Each encoder is built whole (so that pretrained weights load with their own key names) and then cut into pipeline
stages by ``bilipop.models.fusion``: an input part, a list of body blocks, and a head that gives the output vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from bilipop.train_config import DEFAULT_DROPOUT

#: torchvision's VGG-16 ("D") feature layout: channel counts, "M" = 2x2 max pooling.
VGG16_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                       512, 512, 512, "M")
# Same shape as VGG-16 (13 convolutions, 5 poolings) with far fewer channels: trains on a CPU in seconds.
TINY_VGG_LAYOUT: tuple[int | str, ...] = (8, 8, "M", 16, 16, "M", 16, 16, 16, "M", 32, 32, 32, "M",
                                          32, 32, 32, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ViTSpec:
    """Architecture of a ViT; ``out_dim`` is the size of its head's output vector (1000 for ImageNet weights)."""

    patches: int = 16
    dim: int = 768
    ff_dim: int = 3072
    num_heads: int = 12
    num_layers: int = 12
    dropout_rate: float = DEFAULT_DROPOUT
    image_size: int = 384
    out_dim: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VGGSpec:
    """Architecture of a VGG in torchvision's layout (``features.N``, ``avgpool``, ``classifier.N``)."""

    layout: tuple[int | str, ...] = VGG16_LAYOUT
    pool: int = 7
    hidden: int = 4096
    dropout_rate: float = 0.5
    image_size: int = 224
    out_dim: int = 1000

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layout"] = list(self.layout)
        return d


def build_vit(spec: ViTSpec) -> nn.Module:
    """A randomly initialised ``pytorch_pretrained_vit.ViT`` of the given shape."""
    import pytorch_pretrained_vit.model as vit_model

    # ViT(name=None) reads this module global, which the package never defines (NameError otherwise).
    if not hasattr(vit_model, "resize_positional_embedding"):
        vit_model.resize_positional_embedding = False
    return vit_model.ViT(
        name=None, pretrained=False, patches=spec.patches, dim=spec.dim, ff_dim=spec.ff_dim,
        num_heads=spec.num_heads, num_layers=spec.num_layers, dropout_rate=spec.dropout_rate,
        image_size=spec.image_size, num_classes=spec.out_dim,
    )


class VGG(nn.Module):
    """VGG with torchvision's module names, so ``torchvision.models.vgg16`` state dicts load unchanged."""

    def __init__(self, spec: VGGSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in spec.layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((spec.pool, spec.pool))
        self.classifier = nn.Sequential(
            nn.Linear(channels * spec.pool * spec.pool, spec.hidden), nn.ReLU(inplace=True),
            nn.Dropout(spec.dropout_rate), nn.Linear(spec.hidden, spec.hidden), nn.ReLU(inplace=True),
            nn.Dropout(spec.dropout_rate), nn.Linear(spec.hidden, spec.out_dim),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]  # built with a bias (the default): not None
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (B, C, pool, pool)
        return self.classifier(torch.flatten(x, 1))  # (B, out_dim)


class ViTInput(nn.Module):
    """Patch embedding + class token + position embedding: image (B, 3, H, W) -> tokens (B, 1 + P, D)."""

    def __init__(self, vit: Any) -> None:  # pytorch_pretrained_vit's ViT (an untyped library)
        super().__init__()
        self.patch_embedding = vit.patch_embedding
        self.class_token = vit.class_token
        self.positional_embedding = vit.positional_embedding

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(images).flatten(2).transpose(1, 2)  # (B, P, D)
        x = torch.cat((self.class_token.expand(x.shape[0], -1, -1), x), dim=1)  # (B, 1 + P, D)
        return self.positional_embedding(x)


class ViTBlock(nn.Module):
    """One ViT transformer block (no attention mask: every patch attends to every other)."""

    def __init__(self, block: Any) -> None:  # a pytorch_pretrained_vit Block (an untyped library)
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, None)

    def forward_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As forward (eval), also returning the attention probabilities (B, heads, S, S) as a tensor of the
        graph (pytorch_pretrained_vit keeps them only in a module attribute, which concurrent calls overwrite)."""
        b = self.block
        attn = b.attn
        y = b.norm1(x)
        batch, seq, dim = y.shape
        q, k, v = (t.view(batch, seq, attn.n_heads, -1).transpose(1, 2)
                   for t in (attn.proj_q(y), attn.proj_k(y), attn.proj_v(y)))  # (B, H, S, W)
        probs = torch.softmax(q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5), dim=-1)  # (B, H, S, S)
        h = (probs @ v).transpose(1, 2).reshape(batch, seq, dim)
        x = x + b.proj(h)
        return x + b.pwff(b.norm2(x)), probs


class ViTHead(nn.Module):
    """Final norm, class token, the ViT's own MLP head: (B, 1 + P, D) -> (B, out_dim)."""

    def __init__(self, vit: Any) -> None:  # pytorch_pretrained_vit's ViT (an untyped library)
        super().__init__()
        self.norm = vit.norm
        self.fc = vit.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x)[:, 0])


class VGGHead(nn.Module):
    """VGG's average pooling and classifier: feature maps -> (B, out_dim)."""

    def __init__(self, vgg: VGG) -> None:
        super().__init__()
        self.avgpool = vgg.avgpool
        self.classifier = vgg.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def split_vision(encoder: nn.Module) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    """Cut a ViT or VGG into (input part, body blocks, head) without copying parameters."""
    if isinstance(encoder, VGG):
        # One block per pooling stage. The first block is the input part: a stage output must require grad
        # (torchgpipe checkpointing), and the raw image passed through unchanged would not.
        blocks: list[nn.Module] = []
        current: list[nn.Module] = []
        for layer in encoder.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = []
        if current:
            blocks.append(nn.Sequential(*current))
        return blocks[0], blocks[1:], VGGHead(encoder)
    vit: Any = encoder  # otherwise a pytorch_pretrained_vit ViT (an untyped library)
    return ViTInput(vit), [ViTBlock(b) for b in vit.transformer.blocks], ViTHead(vit)


def vgg_spec_from_dict(d: dict) -> VGGSpec:
    """The VGGSpec recorded in a run's config.json (the layout comes back as a tuple)."""
    layout: Sequence[int | str] = d.get("layout", VGG16_LAYOUT)
    return VGGSpec(**{**d, "layout": tuple(x if x == "M" else int(x) for x in layout)})
