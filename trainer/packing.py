"""Packing: the samples of a collated batch laid end to end in fewer, fuller rows.

Responsible for turning a padded batch from `trainer.data.collate` (B rows, each one sample, padded
to the longest) into R <= B rows of at most `max_length` tokens that hold the same samples, with
`position_ids` restarting at 0 for every sample and no attention mask. transformers reads restarting
position ids with no attention mask as packed sequences: flash-attention 2 gets the variable-length
kernel (`cu_seqlens` from the position ids), sdpa / eager / flex get a block-diagonal causal mask
(`masking_utils.find_packed_sequence_indices`). Either way attention never crosses samples, rotary
positions are each sample's own, and every logit equals the unpacked one (tests/trainer/
test_packing.py checks logits and loss on CPU).

The loss needs nothing special: the first token of every sample is a prompt token with label -100,
so the position before a sample boundary never predicts the next sample's first token. The samples
of one micro batch stay the same (packing changes the layout, not what an optimizer step sees), so a
packed run computes the official loss with less padding.

Rows are filled first-fit in decreasing length order (deterministic; ties keep batch order). The
`pixel_values` are reordered to the order in which the `<image>` tokens appear row by row, which is
what `LlavaModel` assumes when it scatters image features. Trailing padding of a row is its own
"sequence" (positions restart at 0), so it is never attended from a sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from trainer.templates import IGNORE_INDEX


def plan_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """Sample indices per row: first fit over lengths in decreasing order (stable), capacity max_length."""
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        if n > max_length:
            raise ValueError(f"sample {i} has {n} tokens, more than the packing length {max_length}")
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max_length - n)
    return rows


def pack_batch(batch: Mapping[str, Any], max_length: int, pad_id: int = 0) -> dict[str, Any]:
    """A packed copy of a collated batch (see the module docstring).

    Returns input_ids / labels / position_ids (R, T) with T the longest packed row, attention_mask
    None, pixel_values reordered, `rows` (sample indices per row), `n_tokens` (real tokens) and
    `n_slots` (R x T); other keys are carried over unchanged.
    """
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    lengths = [int(n) for n in mask.sum(dim=1)]
    rows = plan_rows(lengths, max_length)
    width = max(sum(lengths[i] for i in row) for row in rows) if rows else 0
    n_rows = len(rows)
    packed_ids = torch.full((n_rows, width), pad_id, dtype=ids.dtype)
    packed_labels = torch.full((n_rows, width), IGNORE_INDEX, dtype=labels.dtype)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    has_image = batch.get("image_mask")
    image_index = None
    if batch.get("pixel_values") is not None and has_image is not None:
        image_index = torch.cumsum(has_image.long(), 0) - 1  # sample -> its row in pixel_values
    image_order: list[int] = []
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = lengths[i]
            packed_ids[r, at : at + n] = ids[i, :n]
            packed_labels[r, at : at + n] = labels[i, :n]
            positions[r, at : at + n] = torch.arange(n)
            if image_index is not None and has_image is not None and bool(has_image[i]):
                image_order.append(int(image_index[i]))
            at += n
        positions[r, at:] = torch.arange(width - at)
    out = dict(batch)
    out.update(
        input_ids=packed_ids,
        labels=packed_labels,
        position_ids=positions,
        attention_mask=None,
        rows=rows,
        n_tokens=sum(lengths),
        n_slots=n_rows * width,
    )
    if image_index is not None:
        out["pixel_values"] = batch["pixel_values"][torch.tensor(image_order, dtype=torch.long)]
    return out


def padding_stats(batch: Mapping[str, Any]) -> tuple[int, int]:
    """(real tokens, token slots) of a collated or packed batch."""
    if batch.get("n_tokens") is not None:
        return int(batch["n_tokens"]), int(batch["n_slots"])
    mask = batch["attention_mask"]
    return int(mask.sum()), int(mask.numel())


__all__ = ["pack_batch", "padding_stats", "plan_rows"]
