"""The sub-commands of the ``nnscratch`` command line: each module has ``register(subparsers)``."""
