"""Early stopping keeps the latest step within the margin of the best validation score, not the noisy best."""
import pytest
import torch

from sdpt.early_stopping import EarlyStopping


class Scored(torch.nn.Module):
    """A stand-in prompt with one trainable tensor; `score` is called on EarlyStopping directly below."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))


@pytest.mark.parametrize("margin, kept", [(0.02, 60), (0.0, 40), (0.2, 80)])
def test_the_latest_step_within_the_margin_of_the_best_is_kept(margin, kept):
    stopping = EarlyStopping(validation=None, every=20, margin=margin)
    prompt = Scored()
    for step, value in ((0, 0.30), (20, 0.36), (40, 0.40), (60, 0.385), (80, 0.31)):
        with torch.no_grad():
            prompt.weight.fill_(step)
        stopping.scores.append((step, value))
        stopping._states[step] = {name: t.detach().clone() for name, t in prompt.state_dict().items()}
    assert stopping.best_score == 0.40 and stopping.best_step == kept
    stopping.restore_best(prompt)
    assert prompt.weight.tolist() == [kept] * 3  # the kept step's tensors, not the last step's


def test_the_margin_never_keeps_a_step_below_the_zero_shot_start():
    stopping = EarlyStopping(validation=None, every=20, margin=0.05)
    prompt = Scored()
    for step, value in ((0, 0.30), (20, 0.32), (40, 0.29)):  # step 40 is within the margin but below step 0
        stopping.scores.append((step, value))
        stopping._states[step] = {name: t.detach().clone() for name, t in prompt.state_dict().items()}
    assert stopping.best_step == 20
