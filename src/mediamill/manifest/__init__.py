"""Manifests: CSV or Parquet tables of rows, one row per piece of media, with an optional TOML sidecar.

The face of the stage: load a manifest (``load_manifest``) and get every
problem at once with its row, column and line; the row models
(``TtsRow``, ``CloneRow``, ``SongRow``, ``VideoRow``, part of the plug-in API);
the sidecar's settings (``Meta``); the rules for the files and URLs a
manifest may name; and the table reader and writer.
"""

from ..core.ids import check_safe_id
from .inputs import outside_roots, private_url_problem, resolve_input
from .load import Manifest, control_character, load_manifest, manifest_name, read_meta, sidecar_path
from .meta import Meta, PodcastMeta, VideoMeta
from .problems import ManifestError, Problem
from .rows import (
    DEFAULT_KIND,
    KNOWN_COLUMNS,
    ROW_KINDS,
    SPEECH_KINDS,
    CloneRow,
    Row,
    SongRow,
    SpeechRow,
    TtsRow,
    VideoRow,
    infer_kind,
    is_url,
)
from .tables import MANIFEST_SUFFIXES, RawTable, read_table, write_table

__all__ = [
    "DEFAULT_KIND",
    "KNOWN_COLUMNS",
    "MANIFEST_SUFFIXES",
    "ROW_KINDS",
    "SPEECH_KINDS",
    "CloneRow",
    "Manifest",
    "ManifestError",
    "Meta",
    "PodcastMeta",
    "Problem",
    "RawTable",
    "Row",
    "SongRow",
    "SpeechRow",
    "TtsRow",
    "VideoMeta",
    "VideoRow",
    "check_safe_id",
    "control_character",
    "infer_kind",
    "is_url",
    "load_manifest",
    "manifest_name",
    "outside_roots",
    "private_url_problem",
    "read_meta",
    "read_table",
    "resolve_input",
    "sidecar_path",
    "write_table",
]
