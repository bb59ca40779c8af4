"""Seeded synthetic box-labelled images written as COCO: simple shape sets for tests, and a grounding data set
(colour + shape phrases, textures, clutter, occlusion) with concepts held out for transfer tasks."""
from sdpt.synthetic.shapes import make_shapes_dataset

__all__ = ["make_shapes_dataset"]
