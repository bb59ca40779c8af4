"""Image tokens inside labelled boxes, as a fusion layer's attention sees them (after the block's layer norm), for
initialising prompt tokens from a user's examples.

One image at a time, so there is no padding and every level's token grid covers the whole image: a token belongs to
a box when its cell centre lies inside the box. A box too small to hold any centre takes the finest level's token
under its own centre.
"""
from __future__ import annotations

import torch

from sdpt.detector.grounding_dino.inputs import encode_batch
from sdpt.detector.token_boxes import box_means, token_centres


@torch.no_grad()
def box_token_features(detector, images, boxes: list[torch.Tensor], class_names: list[str], layers: list[int]
                       ) -> dict[int, torch.Tensor]:
    """Per fusion layer index, a (total boxes, E) tensor: the mean image token inside each box, as fed to that
    layer's attention, mapped into its attention space by the layer's frozen `vision_proj`.

    images: PIL images; boxes[i]: (n_i, 4) pixel xyxy in images[i]; class_names: the prompt the forward reads.
    """
    encoder = detector.model.model.encoder
    captured: dict[str, object] = {}
    handles = [encoder.register_forward_pre_hook(
        lambda module, args, kwargs: captured.__setitem__("shapes", list(kwargs["spatial_shapes_list"])),
        with_kwargs=True)]
    for index in layers:
        attn = detector.fusion_layers[index]

        def keep(module, args, kwargs, _index=index):
            vision = args[0] if args else kwargs["vision_features"]
            captured[_index] = module.vision_proj(vision)[0].detach()  # (T, E), batch of one

        handles.append(attn.register_forward_pre_hook(keep, with_kwargs=True))
    found: dict[int, list[torch.Tensor]] = {index: [] for index in layers}
    try:
        for image, image_boxes in zip(images, boxes):
            if len(image_boxes) == 0:
                continue
            batch = encode_batch(detector, [image], [class_names])
            detector.model(**batch.inputs)
            shapes = [(int(h), int(w)) for h, w in captured["shapes"]]
            centres = token_centres(shapes).to(detector.device)
            scale = torch.tensor([image.width, image.height] * 2, dtype=torch.float32)
            normalised = (image_boxes.to(torch.float32) / scale).to(detector.device)
            for index in layers:
                found[index].append(box_means(captured[index], centres, normalised, shapes[0]))
    finally:
        for handle in handles:
            handle.remove()
    width = detector.fusion_layers[layers[0]].vision_proj.out_features
    return {index: torch.cat(parts) if parts else torch.empty(0, width, device=detector.device)
            for index, parts in found.items()}
