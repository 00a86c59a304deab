/**
 * Appended to the generated jupyter_server config of every server startLocalJupyter runs (the embedded,
 * supervised one). An operator's own Jupyter server or Enterprise Gateway can take the same lines.
 *
 * Why (issue 11 item 6: under a burst of ~200 kernels the server's main thread blocked in zmq_msg_send while
 * its one I/O thread kept reconnecting to dead kernels' ports):
 * - Every ZMQ socket jupyter_client opens to a kernel gets a send timeout: a send that cannot proceed (a
 *   DEALER with no usable peer, or at its high-water mark) raises zmq.Again after 1 s instead of blocking
 *   the server's only thread forever. pyzmq's ZMQStream catches it ("SEND Error") and the loop goes on; a
 *   direct send (the control socket's shutdown_request) fails that one request.
 * - Reconnects back off to 5 s (libzmq's default retries every 100 ms, never slower): sockets still pointed
 *   at dead kernels' ports cost the I/O thread little.
 * - A kernel the server gives up on ("died, removing from map") also drops the streams it kept open for a
 *   websocket that went away (buffer_offline_messages): jupyter_server 1.23 closes them only on shutdown,
 *   so each dead kernel left sockets reconnecting to its ports for the server's lifetime.
 */
export const JUPYTER_ZMQ_SAFETY_CONFIG = `
# --- ZMQ safety (see packages/kernel-host/src/jupyter-config-zmq.ts) ---
import zmq as _zmq
from jupyter_client.connect import ConnectionFileMixin as _ConnectionFileMixin
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager as _MappingKernelManager

# libzmq allows 1023 sockets per context by default, and the server opens about ten per kernel with a
# client attached: past ~100 kernels every new socket fails with EMFILE ("Too many open files") and kernel
# starts fail. The process's file-descriptor limit is the real bound; set the context's one above it.
_original_context_init = _zmq.Context.__init__


def _context_init_with_room(self, *args, **kwargs):
    _original_context_init(self, *args, **kwargs)
    try:
        self.set(_zmq.MAX_SOCKETS, 65536)
    except _zmq.ZMQError:  # a context that already has sockets keeps its limit
        pass


_zmq.Context.__init__ = _context_init_with_room

_original_create_connected_socket = _ConnectionFileMixin._create_connected_socket


def _create_connected_socket_bounded(self, channel, identity=None):
    sock = _original_create_connected_socket(self, channel, identity=identity)
    sock.setsockopt(_zmq.SNDTIMEO, 1000)
    sock.setsockopt(_zmq.RECONNECT_IVL_MAX, 5000)
    return sock


_ConnectionFileMixin._create_connected_socket = _create_connected_socket_bounded

_original_handle_kernel_died = _MappingKernelManager._handle_kernel_died


def _handle_kernel_died_and_stop_buffering(self, kernel_id):
    try:
        self.stop_buffering(kernel_id)
    except Exception:  # the kernel may be gone from the map already
        pass
    return _original_handle_kernel_died(self, kernel_id)


_MappingKernelManager._handle_kernel_died = _handle_kernel_died_and_stop_buffering
`;
