"""Every host has a pre-training module that keeps the contract the CLI (`sdpt.pretrain`) relies on."""
import inspect

import pytest

from sdpt.detector import HOSTS, pretrainer
from sdpt.pretrain import COMMON


@pytest.mark.parametrize("host", HOSTS)
def test_each_host_pretrains_with_the_common_and_its_own_keywords(host):
    module = pretrainer(host)
    keywords = inspect.signature(module.pretrain).parameters
    assert {"out", *COMMON} <= set(keywords)
    for flag, options in module.OPTIONS.items():
        assert options.get("dest", flag.lstrip("-").replace("-", "_")) in keywords


def test_an_unknown_host_is_named_in_the_error():
    with pytest.raises(ValueError, match="grounding_dino, glip"):
        pretrainer("owl_vit")
