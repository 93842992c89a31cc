# RotorDream developer commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HTTP ?= tcp:8080
RTSP ?= tcp:8554
STATE ?= run-state

# Debian packages the real-client tests use (installed only when running as root).
DEBS := ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp \
	gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 socat curl iproute2 util-linux wrk chromium \
	dpkg-dev debhelper dh-virtualenv python3-venv python3-dev systemd git nodejs prometheus \
	firefox-esr coturn nginx openssl

.PHONY: run test venv system-deps bench clean

venv: $(STAMP)

$(STAMP): setup.py requirements-test.txt clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt
	$(PY) -m pip install -q -e . --config-settings editable_mode=compat
	$(PY) -m pip install -q wheel -e clients/python
	touch $@

run: venv
	@echo "Starting RotorDream: HTTP $(HTTP), RTSP $(RTSP), state in $(STATE)/"
	@# The embedded defaults, never an installed /etc/rotordream/rotordream.toml
	@# (it turns WS-Discovery multicast on).
	$(VENV)/bin/twistd -n --pidfile= rotordream --config /dev/null --http $(HTTP) --rtsp $(RTSP) --state-dir $(STATE) --secret-file $(STATE).key

system-deps:
	@if [ "$$(id -u)" = "0" ]; then \
		missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then \
			echo "Installing Debian packages: $$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		fi; \
	else \
		echo "Not root: skipping Debian packages ($(DEBS))"; \
	fi

test: venv system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) $(STATE) build *.egg-info
