"""Image tokens inside labelled boxes, as one of GLIP's fusion layers sees them (after its block's `layer_norm_v`),
for initialising prompt tokens from a user's examples: the GLIP counterpart of
`sdpt.detector.grounding_dino.box_features`.

One image at a time. GLIP resizes the image and pads it (bottom and right) to a multiple of `size_divisibility`, so
every level's token grid spans the padded image, not the image itself: boxes are mapped from the original pixels to
the resized ones (per axis) and normalised by the padded size. The level shapes are read from the maps that enter
the fusion layer. A token belongs to a box when its cell centre lies inside it (`sdpt.detector.token_boxes`); a box
too small to hold any centre takes the finest level's token under its own centre.

P6 and P7 round their sizes up (a stride-2 conv on an odd map), so their cells do not tile the padded image exactly;
spreading their centres evenly over it, as for the other levels, misplaces them by under one coarse cell.
"""
from __future__ import annotations

import torch

from sdpt.detector.glip.inputs import encode
from sdpt.detector.token_boxes import box_means, token_centres


@torch.no_grad()
def box_token_features(detector, images, boxes: list[torch.Tensor], class_names: list[str], layers: list[int]
                       ) -> dict[int, torch.Tensor]:
    """Per fusion layer index, a (total boxes, E) tensor: the mean image token inside each box, as fed to that
    layer's attention, mapped into its attention space by the layer's frozen `vision_proj`.

    detector: a `GlipDetector` (`.model`, `.tokenizer`, `.config`); images: PIL images; boxes[i]: (n_i, 4) pixel xyxy
    in images[i] as given (before GLIP's resizing); class_names: the prompt the forward reads.
    """
    model = detector.model
    fusions = model.rpn.head.fusion_layers
    device = next(model.parameters()).device
    layers = list(dict.fromkeys(layers))
    captured: dict[object, object] = {}
    handles = []
    for index in layers:
        fuse = fusions[index]

        def keep_shapes(module, args, kwargs, _index=index):
            features = args[0] if args else kwargs["features"]
            captured["shapes", _index] = [(int(m.shape[-2]), int(m.shape[-1])) for m in features["visual"]]

        def keep_tokens(module, args, output, _index=index):
            captured[_index] = output[0].detach()  # (T, v_dim): batch of one, layer-normed

        handles.append(fuse.register_forward_pre_hook(keep_shapes, with_kwargs=True))
        # The block's own layer norm, which the prompt injector calls too, so prompts attached or not, these are
        # the image tokens the attention reads.
        handles.append(fuse.b_attn.layer_norm_v.register_forward_hook(keep_tokens))
    found: dict[int, list[torch.Tensor]] = {index: [] for index in layers}
    try:
        for image, image_boxes in zip(images, boxes):
            if len(image_boxes) == 0:
                continue
            batch = encode([image], [list(class_names)], detector.tokenizer, detector.config)
            model(batch.pixel_values.to(device), batch.input_ids.to(device), batch.attention_mask.to(device))
            (resized_h, resized_w), (original_h, original_w) = batch.resized_sizes[0], batch.original_sizes[0]
            padded_h, padded_w = batch.pixel_values.shape[-2:]
            to_grid = torch.tensor([resized_w / original_w / padded_w, resized_h / original_h / padded_h] * 2,
                                   dtype=torch.float64)
            normalised = torch.as_tensor(image_boxes).detach().cpu().to(torch.float64).reshape(-1, 4) * to_grid
            for index in layers:
                shapes = captured["shapes", index]
                tokens = captured[index]
                means = box_means(tokens, token_centres(shapes).to(tokens.device), normalised, shapes[0])
                # vision_proj is affine, so projecting the means equals averaging the projected tokens, without
                # projecting every token to the (much wider) attention space.
                found[index].append(fusions[index].b_attn.attn.vision_proj(means))
    finally:
        for handle in handles:
            handle.remove()
    return {index: torch.cat(parts) if parts else
            torch.empty(0, fusions[index].b_attn.attn.vision_proj.out_features, device=device)
            for index, parts in found.items()}
