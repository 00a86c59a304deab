/**
 * Run once in every kernel we start, before any user code. ipykernel buffers stdout/stderr for 0.2 s
 * without a size cap, so a tight print loop builds one stream message of hundreds of MB, which breaks the
 * websocket (message too big) and loses the output. Flushing at 64 KiB makes the writer wait for the IO
 * thread: output arrives in bounded chunks and a flood slows down to what the connection carries.
 */
export const KERNEL_SETUP_CODE = `
def _ci_bound_streams(limit=65536):
    import sys
    for stream in (sys.stdout, sys.stderr):
        buf = getattr(stream, "_buffer", None)
        if buf is None or getattr(stream, "_ci_bounded", False):
            continue
        original = stream.write
        def write(s, _orig=original, _stream=stream):
            n = _orig(s)
            if _stream._buffer.tell() > limit:
                _stream.flush()
            return n
        stream.write = write
        stream._ci_bounded = True
_ci_bound_streams()
del _ci_bound_streams
`;
