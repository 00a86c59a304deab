/**
 * Run once in every kernel we start, before any user code. It shapes how stdout and stderr reach IOPub:
 *
 * - ipykernel buffers a stream for 0.2 s without a size cap, so a tight print loop builds one stream message
 *   of hundreds of MB, which breaks the websocket (message too big) and loses the output. Flushing at 64 KiB
 *   makes the writer wait for the IO thread: output arrives in bounded chunks and a flood slows down to what
 *   the connection carries.
 * - Each explicit flush (`print(..., flush=True)`, progress bars) is one IOPub message. A loop of them sends
 *   thousands a second: the server's rate limit then drops output, and the ZMQ queue between kernel and
 *   server drops messages (the end-of-cell `idle` among them). Inside a cell, flushes are paced by a token
 *   bucket (100 at once, then 100 a second per stream): a few flushes before a crash all go out at once, as
 *   their writer meant, while a loop's text beyond the pace is left to the flush ipykernel schedules for
 *   every write (0.2 s later at most): the same output, in a few messages. Flushes outside a cell
 *   (ipykernel's own, as a cell ends) always go through.
 */
export const KERNEL_SETUP_CODE = `
def _ci_shape_streams(limit=65536, burst=100.0, per_second=100.0):
    import sys, time
    in_cell = [False]
    def pre_run_cell(*_):
        in_cell[0] = True
    def post_run_cell(*_):
        in_cell[0] = False
    events = get_ipython().events
    events.register("pre_run_cell", pre_run_cell)
    events.register("post_run_cell", post_run_cell)
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "_ci_shaped", False) or not hasattr(stream, "_schedule_flush"):
            continue
        original_flush = stream.flush
        original_write = stream.write
        bucket = [burst, time.monotonic()]
        def flush(_orig=original_flush, _bucket=bucket):
            if in_cell[0]:
                now = time.monotonic()
                tokens = min(burst, _bucket[0] + (now - _bucket[1]) * per_second)
                _bucket[1] = now
                if tokens < 1:
                    _bucket[0] = tokens
                    return
                _bucket[0] = tokens - 1
            _orig()
        def write(s, _orig=original_write, _flush=original_flush, _stream=stream):
            n = _orig(s)
            buf = getattr(_stream, "_buffer", None)
            if buf is not None and buf.tell() > limit:
                _flush()
            return n
        stream.flush = flush
        stream.write = write
        stream._ci_shaped = True
_ci_shape_streams()
del _ci_shape_streams
`;
