"""The Debian package (debian/): it builds, holds what it should, and its bundled daemon runs.

One build per module run, from a copy of the working tree (tracked and new files, nothing
git ignores) in a temp dir: the build never writes into the repo. pip fetches the
virtualenv's packages as everywhere else on the machine (its pip config and indexes).

The daemon runs from the extracted package, never from an installed one: inside a mount
namespace of its own, /opt is the package's /opt (read-only, as ProtectSystem=strict makes
it) and /var/lib a tmpfs, so the machine's /opt and /var/lib are untouched. It runs the
unit's ExecStart as an unprivileged user, on 127.0.0.1 only, with --config /dev/null: the
packaged /etc/rotordream/rotordream.toml turns WS-Discovery multicast on.
"""

import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import REQUIRE_ALL, Daemon, free_port, require_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = "/opt/venvs/rotordream"
SITE = "%s/lib/python%d.%d/site-packages" % ((VENV,) + sys.version_info[:2])
UNIT = "rotordream.service"
NOBODY = 65534  # nobody:nogroup, standing in for the package's system user
# A build is about a minute here; pip may be slower to fetch on a cold cache.
pytestmark = pytest.mark.timeout(900)

# What an earlier in-tree `dpkg-buildpackage` leaves in debian/ (not in .gitignore).
BUILD_LEFTOVERS = ("debian/rotordream/", "debian/.debhelper/", "debian/files",
                   "debian/debhelper-build-stamp")


def _require_root():
    if os.geteuid() != 0:
        message = "building and unsharing the package needs root"
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)


def _copy_tree(dest):
    """The working tree's tracked and untracked-but-not-ignored files, into ``dest``."""
    out = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    for rel in sorted(set(out.decode().split("\0")) - {""}):
        src = os.path.join(REPO, rel)
        if rel.startswith(BUILD_LEFTOVERS) or rel.endswith((".substvars", ".debhelper",
                                                             ".debhelper.log")):
            continue
        if not os.path.lexists(src):  # deleted in the working tree
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)


def _clean_env(**extra):
    env = dict(os.environ, **extra)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS",
                "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """Path of the .deb built from the working tree."""
    _require_root()
    for tool in ("git", "dpkg-buildpackage", "dpkg-deb"):
        require_tool(tool, "apt-get install dpkg-dev")
    require_tool("dh", "apt-get install debhelper")
    require_tool("dh_virtualenv", "apt-get install dh-virtualenv")
    work = tmp_path_factory.mktemp("deb")
    src = work / "rotordream"
    _copy_tree(str(src))
    log = work / "build.log"
    with open(log, "w") as f:
        # zstd: about 1 s instead of xz's 60 s for the same contents.
        rc = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=_clean_env(DPKG_DEB_COMPRESSOR_TYPE="zstd")).returncode
    if rc != 0:
        tail = log.read_text().splitlines()[-60:]
        pytest.fail("dpkg-buildpackage failed (%d):\n%s" % (rc, "\n".join(tail)))
    shutil.rmtree(src)  # the build tree: some 400 MB
    debs = glob.glob(str(work / "rotordream_*.deb"))
    assert len(debs) == 1, debs
    yield debs[0]
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    """The package extracted into a directory."""
    path = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", deb, str(path)], check=True)
    yield str(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def control(deb, tmp_path_factory):
    """The package's control files: name -> text."""
    path = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", deb, str(path)], check=True)
    return {name: open(os.path.join(path, name)).read() for name in os.listdir(path)}


def _field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], check=True, capture_output=True,
                          text=True).stdout.strip()


def _unit_path(root):
    for d in ("lib/systemd/system", "usr/lib/systemd/system"):
        if os.path.exists(os.path.join(root, d, UNIT)):
            return os.path.join(root, d, UNIT)
    pytest.fail("no %s in the package" % UNIT)


def _exec_start(root):
    lines = [l for l in open(_unit_path(root)).read().splitlines() if l.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0][len("ExecStart="):])


def _in_namespace(root, script, *args, **kwargs):
    """Run shell ``script`` in a mount namespace whose /opt is the package's /opt."""
    require_tool("unshare", "apt-get install util-linux")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'set -e; cd /; mount --bind "$0/opt" /opt; ' + script, root] + list(args)


def test_control_data(deb, control):
    assert _field(deb, "Package") == "rotordream"
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert _field(deb, "Architecture") == arch
    depends = [d.strip() for d in _field(deb, "Depends").split(",")]
    # The venv's python is /usr/bin/python3 and its wheels are cpXY: only that X.Y runs it.
    major, minor = sys.version_info[:2]
    assert "python3 (>= %d.%d~)" % (major, minor) in depends, depends
    assert "python3 (<< %d.%d~)" % (major, minor + 1) in depends, depends
    assert "adduser" in depends
    assert any(d.startswith("libc6 (>= ") for d in depends), \
        "no shared-library dependencies computed: %s" % depends
    assert control["conffiles"].split() == ["/etc/rotordream/rotordream.toml"]
    # The wheels' private libraries (av.libs, numpy.libs) are not the system's to know.
    assert "shlibs" not in control and "triggers" not in control, sorted(control)
    postinst = control["postinst"]
    assert "adduser --system --group --home /var/lib/rotordream" in postinst
    assert "deb-systemd-helper enable 'rotordream.service'" in postinst
    assert "dropin.cache" in control["prerm"]


def test_contents(deb, root):
    listing = subprocess.run(["dpkg-deb", "-c", deb], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    paths = {line.split(None, 5)[5].split(" -> ")[0][1:] for line in listing}
    top = {p.split("/")[1] for p in paths if p.count("/") > 1}
    assert top <= {"etc", "lib", "opt", "usr"}, top
    for path in (VENV + "/bin/twistd", SITE + "/twisted/plugins/rotordream_plugin.py",
                 "/etc/rotordream/rotordream.toml", "/usr/share/doc/rotordream/README.md.gz"):
        assert path in paths, path
    # changelog.gz for a native version (0.1.0), changelog.Debian.gz for 0.1.0-1
    assert paths & {"/usr/share/doc/rotordream/changelog.gz",
                    "/usr/share/doc/rotordream/changelog.Debian.gz"}
    assert os.path.relpath(_unit_path(root), root) in {"lib/systemd/system/" + UNIT,
                                                       "usr/lib/systemd/system/" + UNIT}
    assert SITE + "/twisted/plugins/dropin.cache" not in paths
    assert not [p for p in paths if p.startswith((SITE + "/tests/", SITE + "/bench/"))]
    # Every module of the working tree, and no stale one.
    tree = subprocess.run(["git", "-C", REPO, "ls-files", "--cached", "--others",
                           "--exclude-standard", "rotordream/*.py"], check=True,
                          capture_output=True, text=True).stdout.split()
    tree = {p for p in tree if os.path.exists(os.path.join(REPO, p))}
    packaged = {p[len(SITE) + 1:] for p in paths
                if p.startswith(SITE + "/rotordream/") and p.endswith(".py")}
    assert packaged == tree
    # The venv is relocated to /opt, on the system's python.
    assert os.readlink(os.path.join(root, VENV[1:], "bin/python3")) == "/usr/bin/python3"
    with open(os.path.join(root, VENV[1:], "bin/twistd")) as f:
        assert f.readline().strip() == "#!%s/bin/python" % VENV
    assert os.access(os.path.join(root, VENV[1:], "bin/twistd"), os.X_OK)
    # The files shipped are the repo's.
    for packaged_file, repo_file in (("etc/rotordream/rotordream.toml", "conf/rotordream.toml"),
                                     (_unit_path(root), "debian/rotordream.service")):
        with open(os.path.join(root, packaged_file), "rb") as a, \
                open(os.path.join(REPO, repo_file), "rb") as b:
            assert a.read() == b.read(), packaged_file


def test_unit_and_config(root):
    require_tool("systemd-analyze", "apt-get install systemd")
    argv = _exec_start(root)
    assert argv[:2] == [VENV + "/bin/twistd", "-n"], argv
    assert argv[argv.index("--config") + 1] == "/etc/rotordream/rotordream.toml"
    unit = open(_unit_path(root)).read()
    assert "StateDirectory=rotordream" in unit.splitlines()
    verify = subprocess.run(_in_namespace(root, 'exec systemd-analyze verify "$1"',
                                          _unit_path(root)),
                            capture_output=True, text=True, timeout=60)
    out = verify.stdout + verify.stderr
    assert verify.returncode == 0 and UNIT not in out, out
    # The packaged configuration loads with the packaged code; its state_dir is the
    # unit's StateDirectory.
    check = ('import rotordream.config as m; c = m.load(sys.argv[1]); '
             'print(c.server.state_dir, c.discovery.enabled, m.__file__)')
    loaded = subprocess.run(_in_namespace(root, 'exec %s/bin/python3 -c "import sys; %s" "$1"'
                                          % (VENV, check),
                                          os.path.join(root, "etc/rotordream/rotordream.toml")),
                            capture_output=True, text=True, timeout=60, env=_clean_env())
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["/var/lib/rotordream", "True",
                                     SITE + "/rotordream/config.py"], loaded.stdout


class PackagedDaemon(Daemon):
    """The unit's ExecStart, from the extracted package, as the service would run it."""

    root: str = None
    postinst_steps: str = ""

    def command(self):
        argv = _exec_start(self.root)
        argv[argv.index("--config") + 1] = os.devnull
        argv += ["--http", "tcp:%d:interface=127.0.0.1" % self.http_port,
                 "--rtsp", "tcp:%d:interface=127.0.0.1" % self.rtsp_port]
        script = (
            # The postinst's own steps for the venv, as root before the service starts.
            self.postinst_steps + "\n"
            "mount -o remount,bind,ro /opt\n"
            # StateDirectory=rotordream: /var/lib/rotordream, the service user's, 0750.
            "mount -t tmpfs -o mode=0755 tmpfs /var/lib\n"
            "mkdir -m 0750 /var/lib/rotordream\n"
            "chown %d:%d /var/lib/rotordream\n"
            "exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            " LANG=C.UTF-8 ROTORDREAM_ADMIN_PASSWORD=\"$ROTORDREAM_ADMIN_PASSWORD\""
            " setpriv --reuid=%d --regid=%d --clear-groups -- \"$@\"\n"
            % (NOBODY, NOBODY, NOBODY, NOBODY))
        return _in_namespace(self.root, script, *argv)


def test_bundled_daemon_runs(root, control):
    require_tool("setpriv", "apt-get install util-linux")
    # The lines of the postinst that prepare the venv (the twisted plugin cache).
    steps = [l.strip() for l in control["postinst"].splitlines()
             if ("dropin.cache" in l or "getPlugins" in l) and not l.strip().startswith("#")]
    assert steps, "the postinst builds no twisted plugin cache"
    daemon = PackagedDaemon(state_dir="/var/lib/rotordream", http_port=free_port(),
                            rtsp_port=free_port())
    daemon.root = root
    daemon.postinst_steps = "\n".join(steps)
    daemon.start(timeout=60)
    try:
        with urllib.request.urlopen(daemon.http + "/api/health", timeout=10) as response:
            assert response.status == 200
            assert json.load(response)["data"]["healthy"] is True
    finally:
        status = daemon.stop(signal.SIGTERM, timeout=20)
    log = daemon.log()
    assert status == 0, log
    assert "(%s/bin/python " % VENV in log, log  # the packaged venv's interpreter
    assert "Unable to write to plugin cache" not in log, log
    assert "Traceback" not in log, log
    assert "Server Shut Down." in log, log
