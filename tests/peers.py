"""Real peers that tests talk to instead of mocks of our own making.

`web_push_service`: the npm web-push-testing emulator, a push service that creates
subscriptions with real keys, checks the VAPID JWT and decrypts what it receives.
Its CLI listens on every interface; here a few lines of Node start the same server
on loopback only, on a free port, for the session.
"""
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
EMULATOR = ROOT / "node_modules" / "web-push-testing" / "src"

NODE_SCRIPT = r"""
const path = require("path");
const src = process.argv[1];
const port = Number(process.argv[2]);
const { PushApiModel } = require(path.join(src, "PushApiModel.js"));
const WebPushTestingServer = require(path.join(src, "server.js"));
const model = new PushApiModel();
const server = new WebPushTestingServer(model, port);
// Endpoints name the address we listen on (the constructor says "localhost").
model.notifyUrl = "http://127.0.0.1:" + port + "/notify/";
// What startServer() does, but on loopback only.
server._server = server._app.listen(port, "127.0.0.1", () => console.log("listening on " + port));
server._server.on("error", (err) => { console.error(err); process.exit(1); });
server.setRequestHandlers();
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WebPushService:
    base_url: str

    @property
    def origin(self):
        return self.base_url

    def subscribe(self, application_server_key):
        """A new subscription as a browser's PushSubscription.toJSON() gives it."""
        response = requests.post(f"{self.base_url}/subscribe",
                                 json={"applicationServerKey": application_server_key}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]

    def messages(self, client_hash):
        response = requests.post(f"{self.base_url}/get-notifications", json={"clientHash": client_hash}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]["messages"]

    def expire(self, client_hash):
        requests.post(f"{self.base_url}/expire-subscription/{client_hash}", timeout=10).raise_for_status()


def _wait_for(url, process, deadline=20.0):
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        if process.poll() is not None:
            raise RuntimeError(f"the push service emulator exited: {process.stdout.read()}")
        try:
            if requests.post(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the push service emulator did not start")


@pytest.fixture(scope="session")
def web_push_service():
    node = shutil.which("node")
    if node is None or not EMULATOR.exists():
        raise RuntimeError("Node and node_modules/web-push-testing are needed (make install-test runs npm ci).")
    port = free_port()
    process = subprocess.Popen(
        [node, "-e", NODE_SCRIPT, str(EMULATOR), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/status", process)
        yield WebPushService(base_url=f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
