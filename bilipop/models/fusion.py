"""The study's late-fusion classifier as ONE flat ``nn.Sequential``, so the very same modules run plainly on one
device or cut into GPipe partitions (``bilipop.train.pipeline``).

Children, in order: an input stage (ViT patch embedding / BERT embeddings + float mask), the cover encoder's
blocks, the title encoder's blocks, and a head (each encoder's head, ``w * vision + (1 - w) * text``, one linear
layer to the classes). Between children flows a tuple of tensors, all with the batch first:
``(image_tokens, text_hidden, mask, rows)``, or ``(image_tokens, rows)`` when w = 1, or ``(text_hidden, mask, rows)``
when w = 0: the unused branch is neither built nor run. ``rows`` (B,) holds each row's dataset index as a float
(so that it may cross GPipe stages, which need tensors that can carry a gradient): the dropout masks are hashed
from it (``bilipop.models.noise``), so a row gets the same masks however the batch and the layers are cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, TypeVar, cast

import torch
from torch import nn

from bilipop.data.schema import NUM_CLASSES
from bilipop.models.noise import KeyedDropout

if TYPE_CHECKING:
    from bilipop.models.vision import ViTBlock

State = tuple[torch.Tensor, ...]


class Stage(nn.Module):
    """A child of the fusion model. ``autocast`` (device type, dtype) is entered inside the child because
    torchgpipe runs partitions in worker threads, where an autocast around the whole call has no effect."""

    def __init__(self, has_vision: bool, has_text: bool) -> None:
        super().__init__()
        self.has_vision, self.has_text = has_vision, has_text
        self.text_slot = 1 if has_vision else 0
        self.autocast: tuple[str, torch.dtype] | None = None
        self.position = 0  # index among the fusion model's children: names this stage's dropout masks
        self.noise_seed = 0  # set per epoch by the training loop (FusionModel.set_noise_seed)

    def forward(self, state: State | torch.Tensor) -> State:
        if isinstance(state, torch.Tensor):  # torchgpipe passes a 1-tuple as its only tensor
            state = (state,)
        *inputs, rows = state
        ctx = torch.autocast(self.autocast[0], dtype=self.autocast[1]) if self.autocast else nullcontext()
        noise = KeyedDropout(self.noise_seed, self.position, rows) if self.training and self._drops() \
            else nullcontext()
        with ctx, noise:
            out = self.run(tuple(inputs))
        return out if isinstance(self, HeadStage) else (*out, rows)

    def _drops(self) -> bool:
        # Whether any dropout of this stage is on (BERT's attention dropout reads its p from an nn.Dropout too);
        # the TorchFunctionMode costs a little per op, so stages without dropout go without it.
        if not hasattr(self, "_has_dropout"):
            self._has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.modules())
        return self._has_dropout

    def run(self, state: State) -> State:  # pragma: no cover - abstract
        raise NotImplementedError


StageT = TypeVar("StageT", bound=Stage)


class InputStage(Stage):
    """First child: the cover tokens and/or the title's hidden states and float mask, from the raw inputs."""

    def __init__(self, vision_in: nn.Module | None, text_in: nn.Module | None) -> None:
        super().__init__(vision_in is not None, text_in is not None)
        self.vision_in, self.text_in = vision_in, text_in

    def forward(self, state: State | torch.Tensor) -> State:
        *inputs, rows = state
        # A stage output that does not require grad breaks torchgpipe's checkpoint backward (docs/reference.md,
        # "GPipe notes").
        return super().forward((*inputs, rows.detach().float().requires_grad_()))

    def run(self, state: State) -> State:
        out: list[torch.Tensor] = []
        if self.vision_in is not None:
            out.append(self.vision_in(state[0]))
        if self.text_in is not None:
            ids, mask = state[self.text_slot], state[self.text_slot + 1]
            out.extend(self.text_in(ids, mask))
        return tuple(out)


class VisionStage(Stage):
    """One block of the cover encoder; the title tensors pass through untouched."""

    def __init__(self, block: nn.Module, has_text: bool) -> None:
        super().__init__(True, has_text)
        self.block = block

    def run(self, state: State) -> State:
        return (self.block(state[0]), *state[1:])


class TextStage(Stage):
    """One block of the title encoder; the cover tokens pass through untouched."""

    def __init__(self, block: nn.Module, has_vision: bool) -> None:
        super().__init__(has_vision, True)
        self.block = block

    def run(self, state: State) -> State:
        i = self.text_slot
        return (*state[:i], self.block(state[i], state[i + 1]), state[i + 1])


class HeadStage(Stage):
    """Each encoder's head, ``w * vision + (1 - w) * text``, then one linear layer to the classes."""

    def __init__(self, vision_head: nn.Module | None, text_head: nn.Module | None, vit_weight: float,
                 out_dim: int, num_classes: int) -> None:
        super().__init__(vision_head is not None, text_head is not None)
        self.vision_head, self.text_head = vision_head, text_head
        self.vit_weight = vit_weight
        self.classifier = nn.Linear(out_dim, num_classes)

    def run(self, state: State) -> State:
        fused = None
        if self.vision_head is not None:
            fused = self.vit_weight * self.vision_head(state[0])  # (B, D)
        if self.text_head is not None:
            i = self.text_slot
            text = (1.0 - self.vit_weight) * self.text_head(state[i], state[i + 1])  # (B, D)
            fused = text if fused is None else fused + text
        return (self.classifier(fused).float(),)  # (B, num_classes)


class FusionModel(nn.Sequential):
    """Late fusion of a cover encoder and a title encoder, laid out as pipeline-ready children."""

    def __init__(self, vision: tuple[nn.Module, list[nn.Module], nn.Module] | None,
                 text: tuple[nn.Module, list[nn.Module], nn.Module] | None, *, vit_weight: float,
                 out_dim: int, num_classes: int = NUM_CLASSES) -> None:
        has_vision, has_text = vision is not None, text is not None
        children: list[Stage] = [InputStage(vision[0] if vision else None, text[0] if text else None)]
        if vision:
            children += [VisionStage(b, has_text) for b in vision[1]]
        if text:
            children += [TextStage(b, has_vision) for b in text[1]]
        children.append(HeadStage(vision[2] if vision else None, text[2] if text else None, vit_weight,
                                  out_dim, num_classes))
        super().__init__(*children)
        for position, child in enumerate(children):
            child.position = position
        self.has_vision, self.has_text, self.vit_weight = has_vision, has_text, vit_weight

    if TYPE_CHECKING:  # for the type checker only: every child is a Stage (see __init__)
        def __iter__(self) -> Iterator[Stage]: ...

    def __getitem__(self, idx):
        # nn.Sequential slices by calling the class; a slice of the fusion model is a plain Sequential.
        if isinstance(idx, slice):
            return nn.Sequential(*list(self.children())[idx])
        return super().__getitem__(idx)

    def pack(self, images: torch.Tensor | None, input_ids: torch.Tensor | None,
             attention_mask: torch.Tensor | None, rows: torch.Tensor | None = None) -> State:
        """The input tuple of the first child: only the tensors of the branches that exist, then ``rows`` (B,), the
        dataset index of each row (0..B-1 when None), from which the dropout masks are made."""
        state: list[torch.Tensor] = []
        if self.has_vision:
            if images is None:
                raise ValueError("this model reads covers: images are required")
            state.append(images)
        if self.has_text:
            if input_ids is None or attention_mask is None:
                raise ValueError("this model reads titles: input_ids and attention_mask are required")
            state += [input_ids, attention_mask]
        if rows is None:
            rows = torch.arange(state[0].shape[0], device=state[0].device)
        return (*state, rows.to(state[0].device, torch.float32))

    def logits(self, images: torch.Tensor | None, input_ids: torch.Tensor | None,
               attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Class scores (B, num_classes) of a batch; a branch that is not built ignores its input."""
        return self(self.pack(images, input_ids, attention_mask))[0]  # (B, num_classes)

    # The two encoders meet only at the head's fusion, so each can run alone (eval only: no dropout, no autocast):
    # a ranking encodes every distinct cover and title once, an explanation differentiates through both at once.
    def encode_cover(self, images: torch.Tensor, attentions: list | None = None) -> torch.Tensor:
        """The cover encoder alone: (B, 3, H, W) -> (B, out_dim), its head included, before the weight w. Given a
        list ``attentions``, a ViT appends each block's attention probabilities (B, heads, S, S) to it."""
        x = self[0].vision_in(images)
        for child in self._blocks(VisionStage):
            if attentions is not None and hasattr(child.block, "forward_attention"):
                x, probs = cast("ViTBlock", child.block).forward_attention(x)  # the ViT's blocks have it
                attentions.append(probs)
            else:
                x = child.block(x)
        return self[-1].vision_head(x)

    def encode_title(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                     embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The title encoder alone: (B, T) ids and 0/1 mask -> (B, out_dim); ``embeds`` (B, T, E), the token
        embeddings of :meth:`token_embeddings`, replaces the ids (so that a gradient can reach them)."""
        text_in = self[0].text_in
        h, mask = text_in(input_ids, attention_mask) if embeds is None else text_in.from_embeddings(embeds,
                                                                                                   attention_mask)
        for child in self._blocks(TextStage):
            h = child.block(h, mask)
        return self[-1].text_head(h, mask)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The title encoder's per-token input vectors (B, T, E), before positions are added."""
        return self[0].text_in.token_embeddings(input_ids)

    def fuse(self, cover: torch.Tensor | None, title: torch.Tensor | None) -> torch.Tensor:
        """Class scores from encoded covers and titles of the same batch size: ``classifier(w * cover +
        (1 - w) * title)``; a branch that is not built is None."""
        head = self[-1]
        fused = None
        if head.vision_head is not None:
            fused = self.vit_weight * cover  # type: ignore[operator]  # a built branch is given its vectors
        if head.text_head is not None:
            text = (1.0 - self.vit_weight) * title  # type: ignore[operator]  # a built branch is given its vectors
            fused = text if fused is None else fused + text
        return head.classifier(fused).float()  # (B, num_classes)

    def _blocks(self, kind: type[StageT]) -> list[StageT]:
        return [child for child in self if type(child) is kind]

    def set_noise_seed(self, seed: int) -> None:
        """Seed of the dropout masks of every child (the training loop sets one per epoch)."""
        for child in self:
            child.noise_seed = int(seed)

    def set_autocast(self, autocast: tuple[str, torch.dtype] | None) -> None:
        """Run every child under ``autocast`` (device type, dtype), or in full precision with None."""
        for child in self:
            child.autocast = autocast
