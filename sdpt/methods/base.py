"""What every prompt method is: a small module holding all trainable tensors, attached to a frozen detector."""
from __future__ import annotations

from torch import nn


class PromptMethod(nn.Module):
    """Base class for prompt methods.

    A method is built for one detector (it may read frozen weights from it, e.g. projections to invert), holds
    every trainable tensor as a parameter and every derived frozen tensor as a non-persistent buffer, and acts
    on the detector only between `attach()` and `detach()`.
    """

    name: str = ""
    config_class: type = object
    cacheable: bool = True  # False when the prompt changes the backbones (nothing can be cached)
    default_lr: float = 5e-3  # used when TrainConfig.lr is None; each method's value comes from the lr search

    def __init__(self, config, detector):
        super().__init__()
        self.config = config
        self.detector = detector
        self.base_model_id = detector.model_id
        self.base_fingerprint = detector.fingerprint()  # taken before any training touches a weight
        # which model answers for each class (sdpt/routing.py); None = every class prompted, as before routing
        self.routing = None

    @property
    def first_prompted_layer(self) -> int:
        """Encoder layers before this index do not depend on the prompt (they can be cached)."""
        return 0

    @property
    def context_tokens(self) -> int:
        """Placeholder tokens the prompt text needs before each class name (learned text context)."""
        return 0

    @property
    def prompts_text_backbone(self) -> bool:
        """True when the text backbone's output depends on the prompt (it cannot be cached)."""
        return False

    def attach(self) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        raise NotImplementedError

    def prepare(self, dataset, images) -> None:
        """Called once by `sdpt.train.tune` before the first step of a fresh run (not on resume), with the training
        set and its loaded images; methods that initialise from the user's examples override it."""

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups; methods override this to give some tensors their own learning rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def trainable_fraction(self) -> float:
        """Trainable parameters as a fraction of the detector's parameters."""
        return self.trainable_parameters() / self.detector.parameter_count()

    def __enter__(self):
        self.attach()
        return self

    def __exit__(self, *exc_info):
        self.detach()
