#!/usr/bin/python3
"""codeinterp's kernel template: one preloaded Python process that forks every sandboxed kernel.

Started (as root) by @codeinterp/kernel beside the embedded Jupyter server, with the preload modules as
arguments. It imports ipykernel and the preload modules once, pays their first-use costs, then only
listens on a root-only unix socket. It never runs user code and never reads a request itself: for each
connection it forks a helper, which

1. receives the request (JSON) and four descriptors from sandbox-launcher.py: the kernel's end of the
   "kernel alive" pipe, the read end of the sandbox's "ready" pipe, and the kernel's stdout and stderr;
2. waits until the sandbox that bubblewrap built for this kernel says it is ready (its holder process,
   running as the workspace's uid in new user, pid, mount, network, ipc, uts and cgroup namespaces);
3. joins the kernel's cgroups, takes its rlimits, enters the holder's namespaces and root (the user
   namespace last, as nsenter does when dropping privileges), becomes the workspace's uid and gid with
   no capabilities and no_new_privs, and forks the kernel inside the sandbox's pid namespace;
4. answers {"ok": true, "pid": <host pid>} and exits.

The kernel then starts from a clean slate of its own: descriptors closed but its own, the sandbox's
environment only, fresh RNG state, and ipykernel run as `python -m ipykernel_launcher` would, with every
module already in memory. Pages the template touched are shared copy-on-write and stay charged to the
template's cgroup; only what a kernel writes is charged to its own.

Nothing that differs per kernel or per user ever lives in this process: requests are read only by the
forked helpers.
"""
import ctypes
import json
import os
import select
import socket
import struct
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
# Entered in this order; "user" last: entered first it would take away the root needed for the others.
NAMESPACES = (
    ("ipc", CLONE_NEWIPC),
    ("uts", CLONE_NEWUTS),
    ("net", CLONE_NEWNET),
    ("cgroup", CLONE_NEWCGROUP),
    ("pid", CLONE_NEWPID),
    ("mnt", CLONE_NEWNS),
)
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_FDS = 4
READY_TIMEOUT_S = 20

libc = ctypes.CDLL(None, use_errno=True)


def log(message):
    print("codeinterp-template: " + message, file=sys.stderr, flush=True)


def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def preload(modules):
    """The same warm-up a pool kernel used to run on itself (preload.ts), done once here."""
    import importlib
    import io

    ok = set()
    for name in modules:
        try:
            importlib.import_module(name)
            ok.add(name.split(".")[0])
        except Exception as e:  # a missing module costs a message its import, nothing else
            log("preload of %s failed: %s" % (name, e))
    if "pandas" in ok:
        try:
            import pandas

            df = pandas.read_csv(io.StringIO("a,b\n1,x\n2,y\n"))
            df.groupby("b").sum().describe()
            if "openpyxl" in ok:
                df.to_excel(io.BytesIO())
        except Exception:
            pass
    if "matplotlib" in ok:
        try:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots()
            ax.bar([1, 2], [3, 4])
            ax.set_title("warm-up")
            fig.savefig(io.BytesIO(), format="png")
            plt.close("all")
        except Exception:
            pass


def preload_kernel():
    """What ipykernel imports while it starts, so a forked kernel finds it in memory."""
    import ipykernel.kernelapp  # noqa: F401  (zmq, tornado, jupyter_client, IPython, traitlets)
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.zmqshell  # noqa: F401
    import IPython.core.completer  # noqa: F401

    for optional in ("matplotlib_inline.backend_inline", "debugpy", "jedi"):
        try:
            __import__(optional)
        except Exception:
            pass


def threads():
    return len(os.listdir("/proc/self/task"))


def children_of(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(name))
    return out


def holder_of(bwrap_pid, uid):
    """The sandbox's holder: the one process under bwrap that runs as the workspace's uid, with no children."""
    seen, todo, found = set(), [bwrap_pid], []
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        kids = children_of(pid)
        todo.extend(kids)
        if not kids and pid != bwrap_pid:
            try:
                st = os.stat("/proc/%d" % pid)
            except FileNotFoundError:
                continue
            if st.st_uid == uid:
                found.append(pid)
    if len(found) != 1:
        raise RuntimeError("expected one sandbox holder under pid %d, found %d" % (bwrap_pid, len(found)))
    return found[0]


def recv_request(conn):
    msg, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST_BYTES, REQUEST_FDS)
    if len(fds) != REQUEST_FDS:
        raise RuntimeError("expected %d descriptors, got %d" % (REQUEST_FDS, len(fds)))
    return json.loads(msg.decode()), fds


def wait_ready(fd):
    ready, _, _ = select.select([fd], [], [], READY_TIMEOUT_S)
    if not ready or os.read(fd, 1) != b"r":
        raise RuntimeError("the sandbox did not become ready")
    os.close(fd)


def enter_sandbox(req, holder):
    """As root: cgroups, rlimits, namespaces and root of the holder; then the workspace's uid, unprivileged."""
    import resource

    ns_fds = [(os.open("/proc/%d/ns/%s" % (holder, name), os.O_RDONLY), flag) for name, flag in NAMESPACES]
    user_fd = os.open("/proc/%d/ns/user" % holder, os.O_RDONLY)
    root_fd = os.open("/proc/%d/root" % holder, os.O_RDONLY | os.O_DIRECTORY)
    for procs in req["cgroupProcs"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    for name, value in req["rlimits"].items():
        limit = getattr(resource, "RLIMIT_" + name.upper())
        resource.setrlimit(limit, (value, value))
    os.setgroups([])
    for fd, flag in ns_fds:
        check(libc.setns(fd, flag), "setns")
        os.close(fd)
    os.fchdir(root_fd)
    os.chroot(".")
    os.close(root_fd)
    check(libc.setns(user_fd, CLONE_NEWUSER), "setns user")
    os.close(user_fd)
    os.setresgid(req["gid"], req["gid"], req["gid"])
    os.setresuid(req["uid"], req["uid"], req["uid"])
    drop_capabilities()
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir(req["cwd"])


def drop_capabilities():
    """Entering the user namespace gave every capability within it (our uid was unmapped there, so taking
    the workspace's uid does not clear them as it would from uid 0): the bounding and ambient sets are
    emptied, the uid taken with its capabilities kept only long enough to clear them all, as bubblewrap
    leaves a kernel it starts."""
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if cap == 0:
        raise OSError(ctypes.get_errno(), "could not drop the capability bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable of both 32-bit halves: all zero
    check(libc.capset(header, data), "capset")


def become_kernel(req, alive_fd, out_fd, err_fd):
    """In the forked kernel: only its own descriptors, environment and RNG state; then ipykernel."""
    os.setsid()  # its own session and process group, as jupyter_client gives a kernel it launches
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    # The holder waits for this pipe to close: it stays open (and is not passed on to programs the
    # kernel runs) for as long as the kernel lives.
    keep = 3
    os.dup2(alive_fd, keep)
    os.set_inheritable(keep, False)
    # Close-on-exec spares programs the kernel runs; a child it merely forks (os.fork, multiprocessing) must
    # let go too, or a dead kernel's sandbox would live on while that child does.
    os.register_at_fork(after_in_child=lambda: os.close(keep))
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.environ.clear()
    os.environ.update(req["env"])
    sys.dont_write_bytecode = True
    import random
    import tempfile

    random.seed()  # Python reseeds its own at fork; numpy's global state is the template's until here
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    tempfile.tempdir = None
    if "matplotlib" in sys.modules:
        mpl = sys.modules["matplotlib"]
        for cached in ("get_configdir", "get_cachedir"):
            fn = getattr(mpl, cached, None)
            if hasattr(fn, "cache_clear"):
                fn.cache_clear()
    # The launcher that sent the request may predate kernelArgs (an upgrade in place restarts the template first).
    sys.argv = ["ipykernel_launcher", "-f", req["connectionFile"], *req.get("kernelArgs", [])]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize()
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is not None:
        # Imported by the template before any IPython shell existed, the inline backend could not hook
        # itself into one (figures left open at the end of a cell are shown by that hook); what its import
        # does in a started kernel is done now that the kernel's shell exists.
        inline._enable_matplotlib_integration()
    app.start()
    os._exit(0)


def serve_one(conn):
    """The forked helper: one request, one kernel, one answer."""
    try:
        req, (alive_fd, ready_fd, out_fd, err_fd) = recv_request(conn)
        wait_ready(ready_fd)
        holder = holder_of(req["bwrapPid"], req["uid"])
        enter_sandbox(req, holder)
        pid = os.fork()
        if pid == 0:
            conn.close()
            try:
                become_kernel(req, alive_fd, out_fd, err_fd)
            finally:
                os._exit(1)
        # The pid namespace's init (bwrap's) adopts the kernel when this helper exits.
        conn.sendall(json.dumps({"ok": True, "pid": pid}).encode())
    except Exception as e:
        try:
            conn.sendall(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, e)}).encode())
        except OSError:
            pass


def accept_one(listener):
    conn, _ = listener.accept()
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != 0:
            return
        if os.fork() == 0:
            listener.close()
            serve_one(conn)
            os._exit(0)
    finally:
        conn.close()


def main(socket_path, modules):
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    preload_kernel()
    preload(modules)
    import gc

    gc.collect()
    gc.freeze()  # the collector never writes to the template's objects in a kernel: they stay shared
    if threads() != 1:
        log("the preload started threads; forking would copy a process in an unknown state")
        sys.exit(1)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    listener.bind(socket_path)
    os.umask(old)
    listener.listen(64)
    print("ready", flush=True)
    started = time.monotonic()
    while True:
        readable, _, _ = select.select([listener, sys.stdin], [], [], 1.0)
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            break  # the service that started us is gone
        if listener in readable:
            try:
                accept_one(listener)
            except OSError as e:  # out of descriptors or processes: this request fails, not the template
                log("could not serve a request: %s" % e)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
    os.unlink(socket_path)  # launchers start kernels the plain way from now on
    log("stopping after %.0f s" % (time.monotonic() - started))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: kernel-template.py <socket> <modules json>", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], json.loads(sys.argv[2]))
