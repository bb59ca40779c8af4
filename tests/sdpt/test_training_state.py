"""A run stopped and gone on from its saved state takes the same steps as one that never stopped."""
import torch

from sdpt.pretraining import optimizer_and_schedule
from sdpt.training_state import has_training_state, load_training_state, save_training_state


def _model_and_data():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    inputs, targets = torch.randn(32, 4), torch.randn(32, 1)
    return model, inputs, targets


def _steps(model, optimizer, schedule, inputs, targets, first: int, last: int) -> None:
    for step in range(first, last):
        batch = slice(step % 4 * 8, step % 4 * 8 + 8)
        loss = torch.nn.functional.mse_loss(model(inputs[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


def test_going_on_from_saved_state_matches_an_uninterrupted_run(tmp_path):
    model, inputs, targets = _model_and_data()
    optimizer, schedule = optimizer_and_schedule(list(model.parameters()), 1e-2, 20)
    _steps(model, optimizer, schedule, inputs, targets, 0, 12)
    reference = [p.detach().clone() for p in model.parameters()]

    model, inputs, targets = _model_and_data()
    optimizer, schedule = optimizer_and_schedule(list(model.parameters()), 1e-2, 20)
    _steps(model, optimizer, schedule, inputs, targets, 0, 5)
    assert not has_training_state(tmp_path)
    save_training_state(tmp_path, optimizer, 5, {"best": {"map50": 0.1}})
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    assert has_training_state(tmp_path)

    model, _, _ = _model_and_data()
    model.load_state_dict(weights)
    optimizer, schedule = optimizer_and_schedule(list(model.parameters()), 1e-2, 20)
    saved = load_training_state(tmp_path, optimizer, schedule)
    assert saved["step"] == 5 and saved["best"] == {"map50": 0.1}
    _steps(model, optimizer, schedule, inputs, targets, 5, 12)
    for got, want in zip(model.parameters(), reference):
        torch.testing.assert_close(got, want)


def test_state_is_safetensors_and_json_only(tmp_path):
    model, inputs, targets = _model_and_data()
    optimizer, schedule = optimizer_and_schedule(list(model.parameters()), 1e-2, 20)
    _steps(model, optimizer, schedule, inputs, targets, 0, 2)
    save_training_state(tmp_path, optimizer, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimizer.safetensors", "training_state.json"]
