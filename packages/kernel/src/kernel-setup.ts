/**
 * Run once in every kernel we start, before any user code. It shapes how stdout and stderr reach IOPub:
 *
 * - ipykernel buffers a stream for 0.2 s without a size cap, so a tight print loop builds one stream message
 *   of hundreds of MB, which breaks the websocket (message too big) and loses the output. Flushing at 64 KiB
 *   makes the writer wait for the IO thread: output arrives in bounded chunks and a flood slows down to what
 *   the connection carries.
 * - Each explicit flush (`print(..., flush=True)`, progress bars) is one IOPub message. A loop of them sends
 *   thousands a second: the server's rate limit then drops output, and the ZMQ queue between kernel and
 *   server drops messages (the end-of-cell `idle` among them). Inside a cell, a flush sooner than 50 ms after
 *   the last one leaves the text to the flush ipykernel schedules for every write (0.2 s later at most): the
 *   output is the same, in a few messages. Flushes outside a cell (ipykernel's own, as a cell ends) go through.
 */
export const KERNEL_SETUP_CODE = `
def _ci_shape_streams(limit=65536, min_gap=0.05):
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
        last = [0.0]
        def flush(_orig=original_flush, _last=last):
            now = time.monotonic()
            if in_cell[0] and now - _last[0] < min_gap:
                return
            _last[0] = now
            _orig()
        def write(s, _orig=original_write, _flush=original_flush, _stream=stream, _last=last):
            n = _orig(s)
            buf = getattr(_stream, "_buffer", None)
            if buf is not None and buf.tell() > limit:
                _last[0] = time.monotonic()
                _flush()
            return n
        stream.flush = flush
        stream.write = write
        stream._ci_shaped = True
_ci_shape_streams()
del _ci_shape_streams
`;
