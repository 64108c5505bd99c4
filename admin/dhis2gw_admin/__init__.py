"""dhis2gw-admin: the operators' desktop app for the dhis2gw gateway.

Layers (issue 9, item 7): ``client`` (HTTP over treq, tokens, plain-language errors) and
``api`` (one method per gateway route) hold every network call; ``viewmodels`` hold the
state and the business rules the screens bind to; ``screens`` and ``app`` are KivyMD
widgets only. Nothing below ``screens``/``app`` imports Kivy, so the view models are tested
without a window.
"""
__version__ = "0.1.0"
