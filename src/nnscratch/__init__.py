"""nnscratch: a neural network written from scratch in NumPy that learns to read handwritten digits.

>>> import nnscratch
>>> net = nnscratch.Network.from_spec("784-32:relu-32:sigmoid-64:selu-64:tanh-10:softmax", seed=0)
>>> data = nnscratch.load_dataset()                                   # MNIST, downloaded once
>>> history = nnscratch.train(net, data.X_train, data.y_train, nnscratch.TrainConfig(epochs=10),
...                            callback=nnscratch.callbacks.ProgressBar())
>>> history.plot()                                                    # learning curves, a matplotlib Figure
>>> (net.predict(data.X_test) == data.y_test).mean()

>>> reader = nnscratch.load_reader()                                  # the trained convnet that ships with it
>>> reader.verdicts(data.X_test[:3]), reader.predict_proba(data.X_test[:3]).argmax(axis=1)
"""

from nnscratch import callbacks
from nnscratch.activations import ACTIVATIONS
from nnscratch.data import Dataset, load_dataset
from nnscratch.errors import NNScratchError
from nnscratch.gradcheck import check_gradients
from nnscratch.network import DenseSpec, Network
from nnscratch.reader import load_reader
from nnscratch.spec import LayerSpec
from nnscratch.training import Callback, History, TrainConfig, evaluate, train

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Callback",
    "Dataset",
    "History",
    "DenseSpec",
    "LayerSpec",
    "NNScratchError",
    "Network",
    "TrainConfig",
    "check_gradients",
    "evaluate",
    "load",
    "load_dataset",
    "load_reader",
    "train",
    "__version__",
    "callbacks",
]


def load(path: str) -> Network:
    """Load a saved model: the same as ``Network.load(path)``."""
    return Network.load(path)
