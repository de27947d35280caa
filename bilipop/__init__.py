"""bilipop: predict a Bilibili video's popularity class from its cover image and title.

Importing this package is cheap: torch, transformers and the HTTP stack are imported only by the modules that
need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
