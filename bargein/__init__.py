"""bargein: contact-center call audio.

The composition root: ``bargein.cli`` (the ``bargein`` command), ``bargein.logs`` (structlog set-up)
and ``bargein.app`` (server + demo wiring). The three packages, ``bargein.mixer``,
``bargein.signaling`` and ``bargein.simulator``, live in the top-level folders ``mixer/``,
``signaling/`` and ``simulator/`` (setuptools ``package-dir``); arrows point one way:
simulator -> signaling -> mixer.
"""

__version__ = "0.1.0"
