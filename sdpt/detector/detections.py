"""What every host's detection gives back for one image: pixel xyxy boxes, class indices and scores."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Detections:
    """Detections in one image: boxes (n, 4) pixel xyxy, class indices into its class list, scores in [0, 1]."""

    boxes: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)

    def to_list(self) -> list[dict]:
        return [
            {"box": [round(float(v), 2) for v in box], "label": self.class_names[int(c)], "score": round(float(s), 4)}
            for box, c, s in zip(self.boxes, self.classes, self.scores)
        ]
