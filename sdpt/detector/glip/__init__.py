"""GLIP (Li et al., CVPR 2022), the host SDPT was published on: GLIP-T's modules in pure PyTorch, under the official
checkpoint's module names, so that `glip_tiny_model_o365_goldg.pth` loads with strict key matching."""
