"""Which image tokens of a multi-scale token sequence lie inside a box: shared by every host's box features.

Tokens are the flattened feature levels, level by level, row-major; a token belongs to a box when its cell centre
lies inside it (coordinates normalised to the token grid's extent).
"""
from __future__ import annotations

import torch


def token_centres(shapes: list[tuple[int, int]]) -> torch.Tensor:
    """(T, 2) normalised (x, y) cell centres of the flattened multi-scale tokens, level by level, row-major."""
    centres = []
    for height, width in shapes:
        ys, xs = torch.meshgrid((torch.arange(height) + 0.5) / height, (torch.arange(width) + 0.5) / width,
                                indexing="ij")
        centres.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))
    return torch.cat(centres)


def box_means(tokens: torch.Tensor, centres: torch.Tensor, boxes: torch.Tensor, finest: tuple[int, int]
               ) -> torch.Tensor:
    """(boxes, E) mean of the (T, E) `tokens` whose cell centres lie inside each normalised xyxy box; a box too small
    to hold a centre takes the finest level's (`finest` = (rows, columns)) token under its own centre."""
    means = []
    for x0, y0, x1, y1 in boxes.tolist():
        inside = (centres[:, 0] >= x0) & (centres[:, 0] <= x1) & (centres[:, 1] >= y0) & (centres[:, 1] <= y1)
        if not inside.any():
            height, width = finest
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            row, col = min(height - 1, int(cy * height)), min(width - 1, int(cx * width))
            inside = torch.zeros_like(inside)
            inside[row * width + col] = True
        means.append(tokens[inside].mean(dim=0))
    return torch.stack(means)
