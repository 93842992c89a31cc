"""RotorDream packaging: the daemon, its twistd plugin and its default config."""

from setuptools import find_packages, setup

setup(
    name="rotordream",
    version="0.1.0",
    description="Camera server daemon: REST, WebSocket, RTSP/RTP, WebRTC, ONVIF, motors",
    packages=find_packages(include=["rotordream", "rotordream.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/rotordream_plugin.py"], "rotordream": ["web/static/*", "web/static/client/*", "web/static/ui/*"]},
    python_requires=">=3.11",
    install_requires=[
        "twisted[tls]>=24.7",
        "autobahn[twisted]>=24.4",
        "txaio",
        "aiortc>=1.9",
        "av>=14",
        "numpy",
        "pyserial",
        "zope.interface",
        "lxml",
        "prometheus_client>=0.17",
    ],
    extras_require={
        "test": ["pytest", "pytest-twisted", "pytest-timeout", "treq", "websockets", "requests"],
    },
    data_files=[("share/rotordream", ["conf/rotordream.toml"])],
)
