"""The draw-a-digit web app: ``create_app(net)`` builds it, ``nnscratch serve MODEL [MODEL...]`` runs it."""

from nnscratch.web.app import create_app

__all__ = ["create_app"]
