"""The detection loss for Grounding DINO with per-image class prompts.

transformers' `GroundingDinoImageLoss` concatenates the phrase maps of all images and offsets image i's phrase
labels by the phrase count of image i alone, not of images 0..i-1; when prompts differ within a batch most
targets point at the wrong phrase. Here the one-hot targets are built image by image. Its `*_enc` losses are
also computed on detached tensors (no gradient); `encoder_loss=True` supervises the encoder's top-k proposals
on their undetached scores and boxes, as the original Grounding DINO does.
"""
from __future__ import annotations

import torch
from transformers.loss.loss_grounding_dino import GroundingDinoHungarianMatcher, GroundingDinoImageLoss


class PerImagePhraseLoss(GroundingDinoImageLoss):
    """`GroundingDinoImageLoss` with targets built from each image's own phrase map."""

    def _get_target_classes_one_hot(self, outputs, targets, indices):
        logits = outputs["logits"]
        onehot = torch.zeros_like(logits, dtype=torch.long)
        for image, (phrase_map, target, (query_index, target_index)) in enumerate(
                zip(outputs["label_maps"], targets, indices)):
            if len(query_index):
                phrases = target["class_labels"][target_index.to(target["class_labels"].device)]
                onehot[image, query_index] = phrase_map[phrases].to(torch.long)
        return onehot


def decoder_predictions(detector, outputs, attention_mask: torch.Tensor):
    """Class logits and boxes of every decoder layer, (layers, B, queries, text_len) and (layers, B, queries, 4)."""
    model = detector.model
    hidden = outputs.intermediate_hidden_states
    references = [outputs.init_reference_points] + list(outputs.intermediate_reference_points.unbind(1)[:-1])
    text = outputs.encoder_last_hidden_state_text
    classes, boxes = [], []
    for level in range(hidden.shape[1]):
        reference = torch.special.logit(references[level], eps=1e-5)
        classes.append(model.class_embed[level](
            vision_hidden_state=hidden[:, level], text_hidden_state=text, text_token_mask=attention_mask.bool()))
        boxes.append((model.bbox_embed[level](hidden[:, level]) + reference).sigmoid())
    return torch.stack(classes), torch.stack(boxes)


def _text_mask(logits: torch.Tensor, attention_mask: torch.Tensor, silent: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens the focal loss reads: the prompt's real tokens, less the `silent` ones (B, T) of each image."""
    mask = torch.zeros_like(logits, dtype=torch.bool)
    valid = attention_mask.bool()
    if silent is not None:
        valid = valid & ~silent[:, : valid.shape[1]]
    mask[:, :, : attention_mask.shape[1]] = valid[:, None, :]
    return mask


def _weighted(losses: dict[str, torch.Tensor], config) -> torch.Tensor:
    weights = {"loss_ce": 2.0, "loss_bbox": config.bbox_loss_coefficient, "loss_giou": config.giou_loss_coefficient}
    total = 0.0
    for name, value in losses.items():
        base = name.split("_")[0] + "_" + name.split("_")[1]
        if base in weights:
            total = total + weights[base] * value
    return total


def detection_loss(detector, outputs, batch, aux_loss: bool = True, encoder_loss: bool = False,
                   silent_tokens: torch.Tensor | None = None, teacher=None, distill_weight: float = 0.0):
    """Total loss and its parts for `outputs` of the detector on `batch` (an `EncodedBatch` with labels).

    silent_tokens: (B, T) True at tokens of classes whose absence from an image says nothing (no confirmed box in
        the whole training set): the focal loss gives them no negative signal (federated loss, as Detic on LVIS).
    teacher: cached zero-shot `TeacherTargets` for this batch; with `distill_weight` > 0 the prompted model's scores
        at the teacher's held tokens are kept close to the frozen model's (`sdpt.detector.grounding_dino.teacher`).
    """
    config = detector.config
    attention_mask = batch.inputs["attention_mask"]
    matcher = GroundingDinoHungarianMatcher(
        class_cost=config.class_cost, bbox_cost=config.bbox_cost, giou_cost=config.giou_cost)
    criterion = PerImagePhraseLoss(matcher=matcher, focal_alpha=config.focal_alpha, losses=["labels", "boxes"])
    phrase_maps = [_pad_map(m, outputs.logits.shape[-1]) for m in batch.phrase_maps]
    text_mask = _text_mask(outputs.logits, attention_mask, silent_tokens)
    main = {"logits": outputs.logits, "pred_boxes": outputs.pred_boxes, "label_maps": phrase_maps, "text_mask": text_mask}
    if aux_loss:
        classes, boxes = decoder_predictions(detector, outputs, attention_mask)
        main["auxiliary_outputs"] = [
            {"logits": c, "pred_boxes": b, "label_maps": phrase_maps, "text_mask": text_mask}
            for c, b in zip(classes[:-1], boxes[:-1])
        ]
    losses = criterion(main, batch.labels)
    if encoder_loss and outputs.enc_outputs_class is not None:
        scores = outputs.enc_outputs_class
        top = torch.topk(scores.max(-1)[0], config.num_queries, dim=1)[1]
        logits = torch.gather(scores, 1, top.unsqueeze(-1).expand(-1, -1, scores.shape[-1]))
        coords = torch.gather(outputs.enc_outputs_coord_logits, 1, top.unsqueeze(-1).expand(-1, -1, 4)).sigmoid()
        encoder = {"logits": logits, "pred_boxes": coords, "label_maps": phrase_maps,
                   "text_mask": _text_mask(logits, attention_mask, silent_tokens)}
        losses.update({k + "_enc": v for k, v in criterion(encoder, batch.labels).items()})
    total = _weighted(losses, config)
    if teacher is not None and distill_weight > 0:
        from sdpt.detector.grounding_dino.teacher import distillation_loss

        losses["loss_distill"] = distillation_loss(detector, outputs, teacher)
        total = total + distill_weight * losses["loss_distill"]
    return total, {k: float(v.detach()) for k, v in losses.items()}


def _pad_map(phrase_map: torch.Tensor, length: int) -> torch.Tensor:
    if phrase_map.shape[-1] >= length:
        return phrase_map[:, :length]
    return torch.nn.functional.pad(phrase_map, (0, length - phrase_map.shape[-1]))
