"""The assembled GLIP: GLIP-T's state dict is the official layout exactly (745 entries, 231,780,222 parameters, checked
against the spec built from constants), a random state dict in the official layout loads strictly and round-trips
through the official .pth layout and our safetensors folder, and a tiny GLIP runs end to end (forward, loss,
detections) with the shapes GLIP gives."""
import torch

from sdpt.detector.glip.atss_loss import glip_loss
from sdpt.detector.glip.checkpoint import (CheckpointError, from_pretrained, load_entries, load_official,
                                          official_entries, save_official, save_pretrained)
from sdpt.detector.glip.model import GlipConfig, GlipModel
from sdpt.detector.glip.postprocess import glip_detections
from tests.sdpt.detector.glip.glip_t_spec import glip_t_spec, parameter_count


def test_glip_t_has_the_official_layout_exactly_and_loads_a_random_official_state_dict_strictly():
    model = GlipModel(GlipConfig.glip_t())
    spec = glip_t_spec()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == spec
    assert sum(p.numel() for p in model.parameters()) == parameter_count(spec) == 231_780_222
    generator = torch.Generator().manual_seed(0)
    state = model.state_dict()
    official = {f"module.{k}": (torch.randn(v.shape, generator=generator) if v.is_floating_point() else v.clone())
                for k, v in state.items() if "cell_anchors" not in k}  # anchors: recomputed, may be absent
    official["module.language_backbone.body.model.embeddings.position_ids"] = torch.arange(512)[None]
    load_entries(model, official_entries({"model": official}))
    key = "rpn.head.dyhead_tower.0.b_attn.attn.v_proj.weight"
    assert torch.equal(model.state_dict()[key], official[f"module.{key}"])


def test_a_checkpoint_that_does_not_fit_is_refused_with_the_keys():
    model = GlipModel(GlipConfig.tiny())
    entries = dict(model.state_dict())
    del entries["rpn.head.bias0"]
    entries["rpn.head.something_else"] = torch.zeros(1)
    try:
        load_entries(model, entries)
    except CheckpointError as error:
        assert "rpn.head.bias0" in str(error) and "rpn.head.something_else" in str(error)
    else:
        raise AssertionError("a misfit checkpoint loaded")


def test_the_official_pth_and_our_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    model = GlipModel(GlipConfig.tiny()).eval()
    save_official(model, tmp_path / "glip.pth")
    again = load_official(tmp_path / "glip.pth", GlipConfig.tiny())
    save_pretrained(again, tmp_path / "folder")
    third = from_pretrained(tmp_path / "folder")
    for name, value in model.state_dict().items():
        assert torch.equal(value, third.state_dict()[name]), name
    images, ids, mask = _inputs()
    with torch.no_grad():
        first, last = model(images, ids, mask).predictions, third(images, ids, mask).predictions
    assert torch.equal(first.dot_product_logits, last.dot_product_logits)


def _inputs():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 96, 128, generator=generator)
    ids = torch.randint(1, 1000, (2, 10), generator=generator)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    return images, ids, mask


def test_a_tiny_glip_runs_end_to_end_and_its_loss_falls():
    torch.manual_seed(0)
    model = GlipModel(GlipConfig.tiny())
    model.train()
    images, ids, mask = _inputs()
    boxes = [torch.tensor([[10.0, 12.0, 60.0, 70.0]]), torch.tensor([[30.0, 20.0, 90.0, 80.0]])]
    token_maps = [torch.zeros(1, 10), torch.zeros(1, 10)]
    token_maps[0][0, 1:3] = 1
    token_maps[1][0, 4] = 1
    optimizer = torch.optim.Adam(model.rpn.head.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        out = model(images, ids, mask)
        p = out.predictions
        loss, parts = glip_loss(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits, out.flat_anchors,
                                p.level_counts, mask, boxes, token_maps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"token_focal", "giou", "centerness"}
    assert losses[-1] < losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model(images, ids, mask)
    p = out.predictions
    found = glip_detections(p.flat_box_regression(), p.flat_centerness(), p.dot_product_logits, out.flat_anchors,
                            p.level_counts, token_maps[0], [(96, 128), (96, 128)], ["thing"],
                            pre_nms_threshold=0.0)
    assert len(found) == 2 and all(d.boxes.shape[-1] == 4 for d in found)
    assert all(((d.boxes[:, 2] <= 127) & (d.boxes[:, 3] <= 95)).all() for d in found)  # clipped to the image
