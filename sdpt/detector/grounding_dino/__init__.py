"""Grounding DINO (transformers' GroundingDino / MMGroundingDino) as a host: the only package that knows its internals."""
