"""Named networks with the training recipe that suits them.

A preset's ``layers`` is the middle of a spec: everything between the input, which comes from the
data, and the output layer, one unit per class.  A preset fills in every option the user did not
give; anything given on the command line wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nnscratch.errors import lookup
from nnscratch.layers import Conv2D, MaxPool2D
from nnscratch.network import Network
from nnscratch.spec import compose_spec, parse_token


@dataclass(frozen=True)
class Preset:
    layers: str
    description: str
    training: dict[str, Any] = field(default_factory=dict)
    init: str | None = None

    @property
    def convolutional(self) -> bool:
        """Whether the network works on images (it then needs square single-channel inputs such as MNIST's)."""
        return any(isinstance(parse_token(token), Conv2D | MaxPool2D) for token in self.layers.split("-"))

    def spec(self, n_features: int, n_classes: int) -> str:
        """The whole spec for data of ``n_features`` values and ``n_classes`` classes.  A convolutional
        preset reads the features as one square channel, 784 as 1x28x28."""
        return compose_spec(n_features, self.layers, n_classes, image=self.convolutional)

    def network(
        self, n_features: int, n_classes: int, *, seed: int | None = 0, dtype: str = "float32", init: str | None = None
    ) -> Network:
        """This preset's network for data of ``n_features`` values and ``n_classes`` classes."""
        return Network.from_spec(self.spec(n_features, n_classes), seed=seed, dtype=dtype, init=init or self.init)


CNN_LAYERS = "conv16k3-bn-relu-maxpool2-conv32k3-bn-relu-maxpool2-flatten-dropout0.3-128:relu"
CNN_BEST_LAYERS = "conv32k3-bn-relu-maxpool2-conv64k3-bn-relu-maxpool2-flatten-dropout0.4-256:relu-dropout0.4"
_ELASTIC = {"augment": "elastic", "augment_strength": 0.5}
_PEN = {"augment": "pen", "augment_strength": 0.5}
_ADAM_WSD = {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 128, "schedule": "wsd"}

DEFAULT_PRESET = "default"  # the network and recipe of `nnscratch train` with no --preset

PRESETS: dict[str, Preset] = {
    "seed": Preset(
        layers="32:relu-32:sigmoid-64:selu-64:tanh",
        description="the original notebook's 784-32-32-64-64-10 network (ReLU, Sigmoid, SELU, Tanh, Softmax)",
        training={**_ADAM_WSD, "epochs": 10},
    ),
    "default": Preset(
        layers="256:relu-128:relu",
        description="784-256-128-10 ReLU network, Adam, 10 epochs",
        training={**_ADAM_WSD, "epochs": 10},
    ),
    "fast": Preset(
        layers="512:relu-512:relu",
        description="784-512-512-10 ReLU network with dropout 0.3, Adam, 20 epochs: the quickest route to 98.5%",
        training={**_ADAM_WSD, "epochs": 20, "dropout": 0.3},
    ),
    "cnn": Preset(
        layers=CNN_LAYERS,
        description="a convnet with batch norm, Adam at 3e-3 with a cosine schedule, batches of 64, 12 epochs: "
        "the quick CNN (99.3% in under 3 minutes on 2 cores)",
        training={**_ADAM_WSD, "learning_rate": 3e-3, "schedule": "cosine", "batch_size": 64, "epochs": 12},
    ),
    "cnn-best": Preset(
        layers=CNN_BEST_LAYERS,
        description="a wider convnet (32 and 64 filters, a 256-unit dense layer, dropout 0.4) on elastic "
        "distortions at strength 0.5, Adam at 2e-3 with a cosine schedule, 36 epochs: the most accurate "
        "convnet in 10 minutes on 2 cores",
        training={**_ADAM_WSD, "learning_rate": 2e-3, "schedule": "cosine", "epochs": 36, **_ELASTIC},
    ),
    "reader": Preset(
        layers=CNN_BEST_LAYERS,
        description="cnn-best's network and recipe on elastic distortions with other pens' strokes (thicker, "
        "thinner, blurred, flat), also taught made-up non-digits (a fifth as many as digits) so that it can say "
        "'not a digit': the reader nnscratch ships",
        training={**_ADAM_WSD, "learning_rate": 2e-3, "schedule": "cosine", "epochs": 36, **_PEN, "not_digits": 0.2},
    ),
    "mlp-best": Preset(
        layers="800:relu-800:relu",
        description="784-800-800-10 ReLU with dropout 0.2 on elastic distortions at strength 0.5, 90 epochs: the "
        "most accurate MLP in 10 minutes on 2 cores",
        training={**_ADAM_WSD, "schedule": "cosine", "epochs": 90, "dropout": 0.2, **_ELASTIC},
    ),
}


def get_preset(name: str) -> Preset:
    return lookup(PRESETS, name, "preset")
