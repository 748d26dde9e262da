"""A real browser and a real server for the page tests: Debian's Chromium driven by Selenium, and the
service on loopback, each started once per test session.

Chromium comes from Debian's packages (`chromium`, `chromium-driver`). When they are absent the
session installs them once (`apt-get update && apt-get install -y chromium chromium-driver`; CI runs
as root on a clean machine); when that is not possible (not root, no apt-get) the browser tests are
skipped with that reason. Nothing is downloaded by Selenium itself: the driver is named
(`/usr/bin/chromedriver`) and Selenium Manager is kept offline.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
PORTS = range(18400, 18500)  # this project's loopback range for test servers
ADMIN = "browser-test-admin-token-" + "z" * 24
APT_TIMEOUT_SECONDS = 900


def ensure_chromium() -> str | None:
    """None when Chromium and its driver are there (installed now if need be); else why not."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return "Chromium is not installed and cannot be installed here (needs apt-get as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", "chromium", "chromium-driver"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_SECONDS,
                              check=False)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return None if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() else "apt-get installed no chromium"


def free_port(ports: range = PORTS) -> int:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The service in demo mode on loopback (threaded werkzeug), with pages and the governance view on."""
    from fhir_vcf.app import create_app
    from fhir_vcf.config import Settings

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path_factory.mktemp("browser") / "browser.db"
    app = create_app(Settings(database_url=f"sqlite:///{db}", demo=True, public_base_url=base,
                              evaluation_keys=(Fernet.generate_key().decode(),), admin_token=ADMIN,
                              log_level="WARNING"))
    httpd = make_server("127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(base=base, app=app, admin=ADMIN)
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session, with a fresh profile."""
    why_not = ensure_chromium()
    if why_not:
        pytest.skip(why_not)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never downloads anything here
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1280,1600")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def print_pdf(driver: Any) -> bytes:
    """The page as Chromium prints it (A4 from the page's own @page rule, backgrounds on)."""
    result = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True})
    return base64.b64decode(result["data"])


def pdf_pages(pdf: bytes) -> int:
    """Page objects in a PDF (`/Type /Page`, not `/Pages`)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
