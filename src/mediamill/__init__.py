"""mediamill: manifests in, finished audio and video out."""

__version__ = "0.1.0"
