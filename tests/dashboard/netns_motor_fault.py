"""Run inside ``unshare -n``: a motor fault on a serial controller, shown by the dashboard.

Started by tests/dashboard/test_motor_fault.py as ``python THIS RESULT.json WORKDIR``.
The motor simulator runs as a process of its own on one end of a socat pty pair, the
daemon on the other (``--motor serial:/dev/pts/N``); SIGUSR1 and SIGUSR2 to the
simulator set and clear its fault. Findings go into RESULT.json, as in netns_dashboard.py.
"""

import json
import os
import re
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from tests.conftest import NO_LIMITS, Daemon, seed_state  # noqa: E402
from tests.dashboard.netns_dashboard import LOGIN, Rest, context_page, step, until  # noqa: E402
from tests.support.live import eventually  # noqa: E402
from tests.support.netns import only_loopback  # noqa: E402
from tests.support.chromium import Chromium  # noqa: E402

# What the page shows of the motor state: the readout, its colour, the events list.
SHOWN = """(() => {
  const node = document.getElementById("motor-state");
  return {value: node.value, fault: node.classList.contains("fault"),
          color: getComputedStyle(node).color,
          events: [...document.querySelectorAll("#events li")].map((l) => l.textContent)};
})()"""


def pty_pair(proc):
    """The two /dev/pts paths socat -d -d prints once its pair is up."""
    paths = []
    while len(paths) < 2:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("socat ended: " + "".join(proc.stderr.readlines()))
        paths += re.findall(r"PTY is (/dev/pts/\d+)", line)
    return paths


def main(result_path, workdir):
    only_loopback()
    result = {}
    processes = []
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, {"resolution": "640x360", "fps": 15})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write(NO_LIMITS + '[webrtc]\naddresses = ["127.0.0.1"]\n')
    daemon = None
    try:
        socat = subprocess.Popen(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        processes.append(socat)
        controller_end, host_end = pty_pair(socat)
        simulator = subprocess.Popen(
            [sys.executable, "-m", "rotordream.motor.simulator", controller_end], cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        processes.append(simulator)
        ready = simulator.stdout.readline()  # its signal handlers are set by then
        if not ready.startswith("simulator on "):
            raise RuntimeError("simulator: " + ready + simulator.stdout.read())
        daemon = Daemon(state_dir, 18082, 18556, ["--config", config,
                                                  "--motor", "serial:" + host_end])
        daemon.start()
        rest = Rest(daemon)
        result["link"] = eventually(
            lambda: rest.call("GET", "/api/settings/motor-state")["motor-state"] == "idle" and
            "idle", timeout=20, what="the serial controller never reported idle", interval=0.05)
        with Chromium() as browser:
            page = context_page(browser, daemon.http + "/")
            page.evaluate(LOGIN % (json.dumps("admin"), json.dumps(daemon.admin_password)))
            until(page, 'document.getElementById("who").textContent.startsWith("admin")')
            result["before"] = until(page, 'document.getElementById("motor-state").value === '
                                           '"idle" && (%s)' % SHOWN)

            def fault():
                simulator.send_signal(signal.SIGUSR1)
                shown = until(page, 'document.getElementById("motor-state").value === '
                                    '"fault" && (%s)' % SHOWN)
                shown["rest"] = rest.call("GET", "/api/settings/motor-state")["motor-state"]
                # A move is refused while the controller is in fault; the page says so.
                page.evaluate('document.getElementById("home").click(); true')
                shown["move_error"] = until(page, 'document.getElementById("motor-error")'
                                                  '.textContent')
                return shown
            step(result, "fault", fault, page)

            def recover():
                simulator.send_signal(signal.SIGUSR2)
                shown = until(page, 'document.getElementById("motor-state").value !== '
                                    '"fault" && (%s)' % SHOWN)
                shown["rest"] = rest.call("GET", "/api/settings/motor-state")["motor-state"]
                return shown
            step(result, "recover", recover, page)
            result["console"] = page.console
            page.close()
    except Exception as e:
        result["setup_error"] = repr(e)
    finally:
        if daemon is not None:
            daemon.stop()
            result["daemon_log"] = daemon.log()[-6000:]
        for proc in reversed(processes):
            proc.terminate()
            proc.wait(10)
        result.setdefault("daemon_log", "")
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
