"""A training recipe: which network to build and how to train it, decided in one place.

A :class:`Recipe` is a network (a preset's, a whole ``spec``, or the preset's with other ``hidden``
layers), how it is initialised, its precision, and its :class:`~nnscratch.training.TrainConfig` (the
seed included).  ``nnscratch train`` builds one from its options, ``--config`` files (the ``best.json``
that ``nnscratch tune`` writes) hold one, and each tuning trial trains one: a trial and ``train`` with
the trial's options build the same network and config by construction, not by two copies of the code.

A recipe's file form is the options as ``nnscratch train`` names them (``"lr"``, ``"batch-size"``);
:data:`OPTIONS` maps those names to the recipe's fields, and :meth:`Recipe.of` fills what is not given
from the preset, as the command line does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from nnscratch.errors import SpecError
from nnscratch.layers import Layer
from nnscratch.layers.base import Shape
from nnscratch.network import Network
from nnscratch.presets import DEFAULT_PRESET, Preset, get_preset
from nnscratch.spec import check_fits, compose_spec, parse_hidden, parse_spec
from nnscratch.training import TrainConfig

ARCHITECTURE = ("preset", "spec", "hidden")  # one network: a file or command line gives all three or none
NETWORK_FIELDS = (*ARCHITECTURE, "init", "dtype")  # a recipe's fields besides the training's (TrainConfig)
DTYPES = ("float32", "float64")

# A recipe's options as `nnscratch train` and its --config files name them -> the field they set
# (a Recipe's own, or its TrainConfig's).
OPTIONS: dict[str, str] = {
    "preset": "preset",
    "spec": "spec",
    "hidden": "hidden",
    "init": "init",
    "dtype": "dtype",
    "seed": "seed",
    "optimizer": "optimizer",
    "lr": "learning_rate",
    "momentum": "momentum",
    "schedule": "schedule",
    "epochs": "epochs",
    "batch-size": "batch_size",
    "l2": "l2",
    "l1": "l1",
    "weight-decay": "weight_decay",
    "dropout": "dropout",
    "augment": "augment",
    "augment-strength": "augment_strength",
    "not-digits": "not_digits",
    "ema": "ema",
    "adversarial": "adversarial",
    "epsilon": "epsilon",
    "validation-size": "validation_size",
    "early-stopping": "early_stopping",
}
_TRAINING_FIELDS = {f.name for f in fields(TrainConfig)}


@dataclass(frozen=True)
class Recipe:
    """A network and its training, checked whole: building one refuses a spec that does not parse, a
    network that cannot fit in memory, ``spec`` with ``hidden``, and ``hidden`` for a convolutional preset.

    ``init`` None uses the preset's (if any), else the initialiser that suits each activation.
    """

    preset: str = DEFAULT_PRESET
    spec: str | None = None
    hidden: str | None = None
    init: str | None = None
    dtype: str = "float32"
    config: TrainConfig = field(default_factory=TrainConfig)
    # the spec parsed and planned once, here; network() builds from a copy
    _planned: tuple[Shape, list[Layer]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.spec is not None and self.hidden is not None:
            raise SpecError("give either --spec (the whole network) or --hidden (an MLP's hidden layers), not both")
        if self.spec is not None:
            # the grammar, every layer against the shape it meets, and the memory it needs: shapes only
            object.__setattr__(self, "_planned", Network.check_spec(self.spec, dtype=self.dtype))
        if self.hidden is not None:
            parse_hidden(self.hidden)
            if self.chosen_preset.convolutional:
                raise SpecError(
                    f"--hidden replaces an MLP's hidden layers, but the {self.preset} preset is a convnet; "
                    "write the whole network with --spec"
                )

    @classmethod
    def of(cls, given: Mapping[str, Any]) -> Recipe:
        """The recipe of the options ``given`` (by field: ``learning_rate``, ``batch_size`` None for the full
        batch, ...), the preset's training recipe filling every training option not given."""
        unknown = set(given) - set(NETWORK_FIELDS) - _TRAINING_FIELDS
        if unknown:
            raise SpecError(f"unknown recipe options: {', '.join(sorted(unknown))}")
        preset = given.get("preset") or DEFAULT_PRESET
        training = {**get_preset(preset).training, **{k: v for k, v in given.items() if k in _TRAINING_FIELDS}}
        network = {k: v for k, v in given.items() if k in NETWORK_FIELDS and k != "preset"}
        return cls(preset=preset, config=TrainConfig(**training), **network)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Recipe:
        """The recipe of options named as on the command line (``{"hidden": "64:relu", "lr": 0.01}``)."""
        unknown = [name for name in options if name not in OPTIONS]
        if unknown:
            raise SpecError(f"unknown options {', '.join(map(repr, unknown))}; a recipe may set {', '.join(OPTIONS)}")
        return cls.of({OPTIONS[name]: value for name, value in options.items()})

    @property
    def chosen_preset(self) -> Preset:
        return get_preset(self.preset)

    @property
    def seed(self) -> int | None:
        return self.config.seed

    def network_spec(self, n_features: int, n_classes: int) -> str:
        """The spec of this recipe's network for data of ``n_features`` values and ``n_classes`` classes."""
        if self.spec is not None:
            return self.spec
        preset = self.chosen_preset
        if self.hidden is None:
            return preset.spec(n_features, n_classes)
        return compose_spec(n_features, [str(layer) for layer in parse_hidden(self.hidden)], n_classes)

    def network(self, n_features: int, n_classes: int, *, threads: int | None = None) -> Network:
        """This recipe's network, initialised, for data of ``n_features`` values and ``n_classes`` classes;
        SpecError (before any array is made) if it does not fit that data."""
        if self._planned is not None:
            input_shape, layers = copy.deepcopy(self._planned)
        else:
            input_shape, layers = parse_spec(self.network_spec(n_features, n_classes))
        check_fits(input_shape, layers, n_features, n_classes)
        init = self.init or self.chosen_preset.init
        return Network(input_shape, layers, seed=self.seed, dtype=self.dtype, init=init, threads=threads)
