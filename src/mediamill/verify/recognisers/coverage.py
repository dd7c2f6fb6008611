"""Where a take has speech that no recognised word covers.

Contract: ``uncovered_speech(pcm, words)`` returns the stretches of the audio
that sound like speech (by level, relative to the take's own noise floor and
peak) but lie outside every word in ``words`` (start/end seconds), as
``(start_s, end_s, speech_s)`` with ``speech_s`` the seconds of speech-like
frames inside. A grammar recogniser puts audio it cannot explain into silence
and noise fillers; this finds it again, at no cost beyond one pass over the
frame levels. ``trailing_silence_s(mask)`` is how much quiet ends the take:
generated speech ends in silence, a take cut short ends mid-word.
``tightened(words, mask)`` moves each word's edges in to the speech it covers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ...media.pcm import SAMPLE_RATE, frame_energy_db
from .base import UNKNOWN, Word

FRAME_S = 0.01
ABOVE_FLOOR_DB = 12.0  # speech is this far above the take's quietest frames...
BELOW_PEAK_DB = 40.0  # ...and within this of its loud ones
MERGE_GAP_S = 0.2  # speech broken by shorter pauses counts as one stretch
MIN_SPEECH_S = 0.05  # shorter stretches are onsets and tails the word boundaries missed
WORD_MARGIN_S = 0.03  # word boundaries are 10 ms frames and a little loose


def speech_mask(pcm: bytes, rate: int = SAMPLE_RATE) -> np.ndarray:
    """One boolean per 10 ms frame: does it sound like speech?"""
    level = frame_energy_db(pcm, rate, FRAME_S)
    if level.size == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.percentile(level, 10))
    peak = float(np.percentile(level, 95))
    threshold = max(floor + ABOVE_FLOOR_DB, peak - BELOW_PEAK_DB)
    return level > threshold


def trailing_silence_s(mask: np.ndarray) -> float:
    """Seconds from the last speech-like frame to the end: near 0 for a take cut off mid-word."""
    speech = np.flatnonzero(mask)
    return round(float(len(mask) - (speech[-1] + 1 if speech.size else 0)) * FRAME_S, 3)


def uncovered_speech(
    pcm: bytes, words: Sequence[tuple[float, float]], mask: np.ndarray | None = None
) -> list[tuple[float, float, float]]:
    """Stretches of speech outside ``words`` (each a (start_s, end_s) pair)."""
    speech = speech_mask(pcm) if mask is None else mask
    free = speech.copy()
    margin = int(round(WORD_MARGIN_S / FRAME_S))
    for start, end in words:
        a = max(0, int(start / FRAME_S) - margin)
        b = min(len(free), int(round(end / FRAME_S)) + margin)
        free[a:b] = False
    frames = np.flatnonzero(free)
    if frames.size == 0:
        return []
    gap = int(round(MERGE_GAP_S / FRAME_S))
    breaks = np.flatnonzero(np.diff(frames) > gap)
    starts = np.concatenate(([frames[0]], frames[breaks + 1]))
    ends = np.concatenate((frames[breaks], [frames[-1]]))
    out = []
    for a, b in zip(starts, ends):
        speech_s = float(free[a : b + 1].sum()) * FRAME_S
        if speech_s >= MIN_SPEECH_S:
            out.append((round(float(a) * FRAME_S, 3), round(float(b + 1) * FRAME_S, 3), round(speech_s, 3)))
    return out


def tightened(words: Sequence[Word], mask: np.ndarray) -> list[Word]:
    """Each word's start moved to its first speech-like frame and its end after its last.

    A grammar aligner hands the quiet around the words to the words themselves (the first word starts
    at 0, the last runs to the end of the take); captions and the read-along need where the speech is.
    A word without a speech-like frame, and the unknown words over extra speech, stay as they are.
    """
    out = []
    for word in words:
        a, b = int(round(word.start_s / FRAME_S)), int(round(word.end_s / FRAME_S))
        inside = np.flatnonzero(mask[a:b]) if word.text != UNKNOWN else np.zeros(0)
        if inside.size:
            word = dataclasses.replace(
                word,
                start_s=round((a + int(inside[0])) * FRAME_S, 3),
                end_s=round((a + int(inside[-1]) + 1) * FRAME_S, 3),
            )
        out.append(word)
    return out
