#!/usr/bin/python3
"""codeinterp's kernel launcher: one ipykernel in a bubblewrap sandbox with no network.

Copied next to its kernelspec by @codeinterp/kernel on every start (edits are overwritten); the settings
come from launcher.json beside it. Jupyter starts it as root with the kernel's workspace as cwd and the
connection file as last argument; it runs ipykernel as the workspace's owner uid in new user, pid, ipc,
uts and network namespaces (only its own loopback), seeing the system read-only, its workspace at
/mnt/data, a private /tmp, and its five ZMQ sockets in a directory of its own. The chain
prlimit -> setpriv -> bwrap -> python is exec'd, so the pid and process group jupyter_client holds stay
the kernel's.

Why the sockets move: with c.KernelManager.transport = "ipc" the server puts them in its runtime dir,
next to every kernel's connection file and HMAC key, so that dir must never be mounted into a sandbox.
The kernel binds them in <ipc root>/<kernel id>/ (mounted at /run/codeinterp/ipc) and the server reaches
them through symlinks at the paths it expects (unix socket connect() follows them across namespaces).
"""
import hashlib
import hmac
import json
import os
import shlex
import shutil
import socket
import sys

SANDBOX_DIR = "/run/codeinterp"
SANDBOX_IPC = SANDBOX_DIR + "/ipc"
SANDBOX_CONNECTION_FILE = SANDBOX_DIR + "/kernel.json"
SANDBOX_PROXY = SANDBOX_DIR + "/proxy.sock"
SANDBOX_MPLCONFIGDIR = "/tmp/matplotlib"
FIRST_CACHE_FD = 7  # 3: connection file; 5 and 6: the template's pipes (kernel_from_template)
ALIVE_FD = 5
READY_FD = 6
PROXY_PORT = 3128
PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
# Thread pools of numpy's BLAS and of OpenMP code size themselves by the machine's cores, not by the kernel's
# CPU quota; their idle threads spin before they sleep, so under a 1-core quota they take CPU time from the
# code itself (a matplotlib figure took ~1.5x as long). They get as many threads as the quota has cores.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def fail(message):
    print("codeinterp-sandbox: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def kernel_id_of(connection_file):
    base = os.path.basename(connection_file)
    if not (base.startswith("kernel-") and base.endswith(".json")):
        fail("unexpected connection file name " + base)
    return base[len("kernel-"):-len(".json")]


def gone(runtime_dir, name):
    # jupyter_client removes kernel-<id>.json on final shutdown only (not on restart): that is "gone".
    return not os.path.exists(os.path.join(runtime_dir, "kernel-%s.json" % name))


def collect_garbage(runtime_dir, kid, ipc_root, cgroup_parents):
    """Socket dirs and cgroups of kernels that are gone. Done here because jupyter_client may SIGKILL
    the kernel, so nothing runs at its exit; rmdir of a cgroup that still has processes fails (EBUSY)."""
    for parent, remove in [(ipc_root, lambda p: shutil.rmtree(p, ignore_errors=True))] + [
        (p, os.rmdir) for p in cgroup_parents
    ]:
        try:
            names = os.listdir(parent)
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(parent, name)
            if name != kid and os.path.isdir(path) and gone(runtime_dir, name):
                try:
                    remove(path)
                except OSError:
                    pass


def prepare_ipc(info, ipc_root, kid):
    """The kernel's own socket dir plus the server-side symlinks; returns the connection info the
    kernel sees. The dir is root's, sticky and o+w (1733): the kernel can bind sockets there and remove
    only its own, and on hosts with fs.protected_symlinks=1 root will not follow a link the kernel
    put in place of a socket."""
    if info.get("transport") != "ipc":
        fail("the sandbox has no network: the Jupyter server must use c.KernelManager.transport = 'ipc'")
    os.makedirs(ipc_root, mode=0o711, exist_ok=True)
    kdir = os.path.join(ipc_root, kid)
    os.makedirs(kdir, exist_ok=True)
    os.chown(kdir, 0, 0)
    os.chmod(kdir, 0o1733)
    for port in PORTS:
        link = "%s-%s" % (info["ip"], info[port])
        target = os.path.join(kdir, "k-%s" % info[port])
        for stale in (link, target):  # a restart reuses the same names
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        os.symlink(target, link)
    return kdir, dict(info, ip=SANDBOX_IPC + "/k")


def cgroup_v1(dirs, kid, limits, pid, background=None):
    """dirs: controller -> parent dir of every kernel's cgroup (prepared by the service at start)."""
    mem = dirs["memory"] + "/" + kid
    os.makedirs(mem, exist_ok=True)
    has_memsw = os.path.exists(mem + "/memory.memsw.limit_in_bytes")
    if has_memsw:
        write(mem + "/memory.memsw.limit_in_bytes", -1)  # memsw must stay >= the limit while both change
    write(mem + "/memory.limit_in_bytes", limits["memoryBytes"])
    if has_memsw:
        write(mem + "/memory.memsw.limit_in_bytes", limits["memoryBytes"])  # no escape into swap
    write(mem + "/memory.swappiness", 0)
    pids = dirs["pids"] + "/" + kid
    os.makedirs(pids, exist_ok=True)
    write(pids + "/pids.max", limits["maxProcesses"])
    cpu = dirs["cpu"] + "/" + kid
    os.makedirs(cpu, exist_ok=True)
    write(cpu + "/cpu.cfs_period_us", 100000)
    write(cpu + "/cpu.cfs_quota_us", int(limits["cpus"] * 100000))
    write(cpu + "/cpu.shares", background["cpuShares"] if background else 1024)
    for d in (mem, pids, cpu):
        write(d + "/cgroup.procs", pid)


def cgroup_v2(parent, kid, limits, pid, background=None):
    """parent: a cgroup with +memory +pids +cpu in cgroup.subtree_control and no processes of its own."""
    d = parent + "/" + kid
    os.makedirs(d, exist_ok=True)
    write(d + "/memory.max", limits["memoryBytes"])
    if os.path.exists(d + "/memory.swap.max"):
        write(d + "/memory.swap.max", 0)
    write(d + "/memory.oom.group", 1)  # an OOM kills the kernel with its subprocesses, at once
    write(d + "/pids.max", limits["maxProcesses"])
    write(d + "/cpu.max", "%d 100000" % int(limits["cpus"] * 100000))
    write(d + "/cpu.weight", background["cpuWeight"] if background else 100)
    write(d + "/cgroup.procs", pid)


def join_cgroup(cgroup, kid, limits, pid, background):
    if cgroup is None:
        return
    if cgroup["version"] == 1:
        cgroup_v1(cgroup["dirs"], kid, limits, pid, background)
    else:
        cgroup_v2(cgroup["dir"], kid, limits, pid, background)


def background_of(cfg, workspace):
    """A pool kernel (started in <...>/kernel-pool/<slot>) starts and preloads at a low CPU weight, so a
    refill takes only CPU that running executions leave; the worker raises it when a message gets it.
    A restart in a message's workspace starts at the normal weight."""
    bg = cfg.get("background")
    if bg and os.path.basename(os.path.dirname(workspace)) == bg["slotsDirName"]:
        return bg
    return None


def cgroup_parents(cgroup):
    if cgroup is None:
        return []
    return list(cgroup["dirs"].values()) if cgroup["version"] == 1 else [cgroup["dir"]]


def proxy_url(secret, kid):
    """The kernel's own proxy credentials: its id, signed (egress/proxy.ts's egressPassword)."""
    if not secret:
        return "http://127.0.0.1:%d" % PROXY_PORT
    password = hmac.new(secret.encode(), ("egress:" + kid).encode(), hashlib.sha256).hexdigest()[:32]
    return "http://%s:%s@127.0.0.1:%d" % (kid, password, PROXY_PORT)


KERNEL_COMMAND = ["/usr/bin/python3", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", SANDBOX_CONNECTION_FILE]


def proxy_forwarder(proxy_socket, url):
    """Shell that starts the proxy forwarder in the sandbox, and the proxy environment; none without a proxy.
    No network inside: 127.0.0.1:3128 of the sandbox's own loopback forwards to the proxy's socket.
    setsid keeps the forwarder out of the kernel's process group, which interrupts signal."""
    if not proxy_socket:
        return "", []
    forward = (
        "setsid socat TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:%s </dev/null >/dev/null 2>&1 & "
        % (PROXY_PORT, SANDBOX_PROXY)
    )
    env = [(k, url) for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")]
    env += [(k, "localhost,127.0.0.1") for k in ("NO_PROXY", "no_proxy")]
    return forward, env


def matplotlib_cache(cache_dir):
    """The server's prepared font cache, copied into the kernel's own MPLCONFIGDIR through inherited fds
    (opened here as root; the kernel's uid needs no access to the server's state dir, and its copy is its
    own to rebuild). bwrap arguments for it."""
    if not cache_dir:
        return []
    try:
        names = sorted(n for n in os.listdir(cache_dir) if n.startswith("fontlist-") and n.endswith(".json"))
    except OSError:
        return []
    args = ["--dir", SANDBOX_MPLCONFIGDIR]
    for i, name in enumerate(names[:4]):
        fd = os.open(os.path.join(cache_dir, name), os.O_RDONLY)
        if fd != FIRST_CACHE_FD + i:
            os.dup2(fd, FIRST_CACHE_FD + i)
            os.close(fd)
        os.set_inheritable(FIRST_CACHE_FD + i, True)
        args += ["--file", str(FIRST_CACHE_FD + i), SANDBOX_MPLCONFIGDIR + "/" + name]
    return args


def place_fd(fd, target):
    if fd != target:
        os.dup2(fd, target)
        os.close(fd)
    os.set_inheritable(target, True)


# The sandbox's pid 1 while the kernel forked into it lives: says "ready" on fd 6 once bubblewrap has built
# everything, reaps every orphan (as an init must, or their pids stay taken), and exits when fd 5 reads EOF:
# the kernel, which holds the other end, is gone. As the pid namespace's init it cannot be killed from inside
# (kill(-1) of the kernel's own cleanup, or hostile code, reaches everything but it), and its exit takes
# every process of the sandbox with it.
HOLDER = """
import os, select, signal
def reap(*_):
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return
signal.signal(signal.SIGCHLD, reap)
signal.signal(signal.SIGINT, signal.SIG_DFL)  # as init, a signal without a handler cannot reach it from inside
os.write(%d, b"r")
os.close(%d)
while os.read(%d, 1):
    pass
""" % (READY_FD, READY_FD, ALIVE_FD)
HOLDER_COMMAND = ["/usr/bin/python3", "-I", "-S", "-c", HOLDER]


def connect_template(template):
    """A connection to the template, or None while it is not running (the kernel then starts the plain way)."""
    if not template:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(template["socket"])
    except OSError:
        conn.close()
        return None
    return conn


def kernel_from_template(conn, request):
    """Instead of starting Python in the sandbox, has the template fork a preloaded kernel into it.

    The sandbox runs a holder (HOLDER) as its pid 1: it says "ready" on fd 6 once bubblewrap has built
    everything, then reads fd 5 until the kernel, which holds the pipe's other end, exits; the holder then
    exits and so does bwrap, which is what jupyter_client waits on. If bwrap dies first (a kill, a
    shutdown), its pid namespace goes and the kernel with it. A helper process hands the request to the
    template once bwrap runs. It stays this process's child: bwrap, exec'd here, reaps children it did not
    start and ignores them (a double fork would leave it to pid 1, which in a container may never reap it).
    Returns the holder's command."""
    alive_r, alive_w = os.pipe()
    ready_r, ready_w = os.pipe()
    bwrap_pid = os.getpid()  # exec keeps it: prlimit, setpriv and bwrap all run in this process
    if os.fork() == 0:
        try:
            os.close(alive_r)
            os.close(ready_w)
            ask_template(conn, dict(request, bwrapPid=bwrap_pid), [alive_w, ready_r, 1, 2])
        finally:
            os._exit(0)
    conn.close()
    os.close(alive_w)
    os.close(ready_r)
    place_fd(alive_r, ALIVE_FD)
    place_fd(ready_w, READY_FD)
    return HOLDER_COMMAND


def ask_template(conn, request, fds):
    """In the helper: one request; a refusal is printed where the kernel's stderr goes, and
    closing our copy of the alive pipe then ends the sandbox, so jupyter_client sees a kernel that died."""
    try:
        conn.settimeout(60)
        socket.send_fds(conn, [json.dumps(request).encode()], fds)
        for fd in fds[:2]:
            os.close(fd)
        answer = json.loads(conn.recv(65536).decode() or "{}")
        if not answer.get("ok"):
            error = answer.get("error", "no answer")
            print("codeinterp-sandbox: the kernel template refused: %s" % error, file=sys.stderr, flush=True)
    except Exception as e:
        print("codeinterp-sandbox: the kernel template failed: %s" % e, file=sys.stderr, flush=True)


def cgroup_procs(cgroup, kid):
    if cgroup is None:
        return []
    if cgroup["version"] == 1:
        return ["%s/%s/cgroup.procs" % (d, kid) for d in cgroup["dirs"].values()]
    return ["%s/%s/cgroup.procs" % (cgroup["dir"], kid)]


def main(config_file, connection_file):
    with open(config_file) as f:
        cfg = json.load(f)
    limits = cfg["limits"]
    workspace = os.getcwd()
    st = os.stat(workspace)
    if st.st_uid < cfg["minUid"] or st.st_gid < cfg["minUid"]:
        fail("refusing to run a kernel in %s owned by uid %d" % (workspace, st.st_uid))
    connection_file = os.path.abspath(connection_file)
    kid = kernel_id_of(connection_file)
    with open(connection_file) as f:
        info = json.load(f)

    collect_garbage(os.path.dirname(connection_file), kid, cfg["ipcRoot"], cgroup_parents(cfg.get("cgroup")))
    kdir, sandbox_info = prepare_ipc(info, cfg["ipcRoot"], kid)
    join_cgroup(cfg.get("cgroup"), kid, limits, os.getpid(), background_of(cfg, workspace))

    binds = ["--bind", workspace, "/mnt/data", "--bind", kdir, SANDBOX_IPC]
    proxy = cfg.get("proxySocket")
    if proxy:
        binds += ["--ro-bind", proxy, SANDBOX_PROXY]  # connect() works on a read-only mount
    forward, proxy_env = proxy_forwarder(proxy, proxy_url(cfg.get("proxySecret"), kid))
    # Without a cgroup there is no quota to match: the pools keep their own sizing.
    threads = max(1, int(limits["cpus"])) if cfg.get("cgroup") else None
    mpl_dir = SANDBOX_MPLCONFIGDIR if cfg.get("matplotlibCacheDir") else "/tmp"
    env = [
        ("HOME", "/tmp"), ("MPLCONFIGDIR", mpl_dir), ("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"),
        ("PYTHONDONTWRITEBYTECODE", "1"), ("MPLBACKEND", "module://matplotlib_inline.backend_inline"),
        *[(k, str(threads)) for k in BLAS_THREAD_VARS if threads],
        *proxy_env,
    ]
    kernel_args = list(cfg["kernelArgs"])  # the kernels' IPython settings (kernel-ipython.ts)
    kernel = KERNEL_COMMAND + kernel_args
    command = ["/bin/sh", "-c", forward + "exec " + shlex.join(kernel)] if forward else kernel
    as_pid_1 = []
    # Kernels with an egress proxy start the plain way: their forwarder must run inside the sandbox first.
    template = None if forward else connect_template(cfg.get("template"))
    if template:
        as_pid_1 = ["--as-pid-1"]
        command = kernel_from_template(template, {
            "uid": st.st_uid, "gid": st.st_gid, "cwd": "/mnt/data", "connectionFile": SANDBOX_CONNECTION_FILE,
            "kernelArgs": kernel_args,
            "cgroupProcs": cgroup_procs(cfg.get("cgroup"), kid), "env": dict(env),
            "rlimits": {"nproc": limits["rlimitProcesses"], "as": limits["addressSpaceBytes"],
                        "fsize": limits["maxFileBytes"], "nofile": limits["maxOpenFiles"]},
        })

    # The rewritten connection file (it holds the HMAC key) reaches the sandbox only through fd 3.
    r, w = os.pipe()
    os.write(w, json.dumps(sandbox_info).encode())  # a few hundred bytes: fits the pipe buffer
    os.close(w)
    place_fd(r, 3)
    mpl = matplotlib_cache(cfg.get("matplotlibCacheDir"))

    argv = [
        "prlimit",
        "--nproc=%d" % limits["rlimitProcesses"],
        "--as=%d" % limits["addressSpaceBytes"],
        "--fsize=%d" % limits["maxFileBytes"],
        "--nofile=%d" % limits["maxOpenFiles"],
        "--",
        "setpriv", "--reuid=%d" % st.st_uid, "--regid=%d" % st.st_gid, "--clear-groups", "--",
        "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--unshare-cgroup-try", "--die-with-parent", *as_pid_1,
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
        *binds, "--chdir", "/mnt/data",
        "--file", "3", SANDBOX_CONNECTION_FILE, *mpl,
        "--clearenv", *[x for k, v in env for x in ("--setenv", k, v)],
        *command,
    ]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: sandbox-launcher.py <launcher.json> <connection file>")
    main(sys.argv[1], sys.argv[2])
