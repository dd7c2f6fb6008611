"""Audio through ffmpeg as it arrives: raw 16-bit mono PCM in, whatever the arguments make out.

``pipe_pcm(chunks, sample_rate, args)`` starts one ffmpeg, writes each chunk
to it as the source yields it and yields what ffmpeg has made so far, so
audio can be re-timed or encoded while it is still being generated. The
source is only ever advanced in the caller's thread (a generator may be
closed from there, which a generator running in another thread refuses);
a helper thread drains ffmpeg's output, so neither side can block the
other. Output lags its input by at most one source chunk, plus what ffmpeg
holds back for its filters and encoder, all of which comes at the end.

Closing the iterator early (a client gone, a cancelled request) ends ffmpeg
and closes the source. The child is not tied to its parent's thread as
``run_ffmpeg``'s are: it outlives the call that starts it, and it ends by
itself when its parent dies, since its input then reaches end of file.
"""

from __future__ import annotations

import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence

from .ffmpeg import MediaError, ffmpeg_exe

READ_BYTES = 65536


def _drain(stream, out: queue.Queue) -> None:
    try:
        while block := stream.read1(READ_BYTES):
            out.put(block)
    except (OSError, ValueError):  # the pipe closed under us: the caller is ending ffmpeg
        pass
    finally:
        out.put(None)


def _ready(out: queue.Queue) -> Iterator[bytes]:
    """Whatever ffmpeg has written so far, without waiting (the end marker is left for the closing loop)."""
    while True:
        try:
            block = out.get_nowait()
        except queue.Empty:
            return
        if block is None:
            out.put(None)
            return
        yield block


def pipe_pcm(chunks: Iterable[bytes], sample_rate: int, args: Sequence[str]) -> Iterator[bytes]:
    """Stream PCM chunks through ``ffmpeg -f s16le -ar RATE -ac 1 -i pipe:0 ARGS pipe:1``.

    ``args`` must name the output format (``-f``): a pipe has no file name to guess it from.
    Raises MediaError when ffmpeg fails, with the end of its log.
    """
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "s16le",
        "-ar",
        str(sample_rate),
        "-ac",
        "1",
        "-i",
        "pipe:0",
        *args,
        "-flush_packets",
        "1",
        "pipe:1",
    ]
    log = tempfile.TemporaryFile()  # a file, not a pipe: nobody has to read it while ffmpeg runs
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdin is not None and proc.stdout is not None
    out: queue.Queue[bytes | None] = queue.Queue()
    reader = threading.Thread(target=_drain, args=(proc.stdout, out), name="mediamill-ffmpeg-pipe", daemon=True)
    reader.start()
    source = iter(chunks)
    finished = False
    try:
        for chunk in source:
            try:
                proc.stdin.write(chunk)
                proc.stdin.flush()
            except BrokenPipeError:  # ffmpeg gave up; its log says why (below)
                break
            yield from _ready(out)
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        while (block := out.get()) is not None:
            yield block
        if proc.wait() != 0:
            log.seek(0)
            tail = "\n".join(log.read().decode(errors="replace").strip().splitlines()[-8:])
            raise MediaError(f"ffmpeg exited with {proc.returncode}: {tail or '(no message)'}")
        finished = True
    finally:
        if not finished:
            proc.kill()
        close = getattr(source, "close", None)
        if close is not None:
            close()
        try:
            proc.stdin.close()
        except OSError:  # unwritten input to a killed ffmpeg
            pass
        proc.wait()
        reader.join(timeout=5)  # at end of file once ffmpeg is gone
        proc.stdout.close()
        log.close()
