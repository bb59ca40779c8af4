"""Test helper: put a fusion prompt in the state tuning leaves it in (its gate or branch scales open)."""
import torch


def open_up(prompt, scale: float = 1.0, token_gain: float = 1.0):
    """Open whichever gate the prompt's injection has (shared-gate mass, or branch scales before tanh) to `scale`,
    and multiply its tokens by `token_gain`, so that the prompt visibly acts; returns the prompt."""
    with torch.no_grad():
        for name in ("gates", "branch_scales"):
            if hasattr(prompt, name):
                getattr(prompt, name).fill_(scale)
        if token_gain != 1.0 and hasattr(prompt, "prototypes"):
            prompt.prototypes.mul_(token_gain)
    return prompt
