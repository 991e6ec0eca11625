"""The Chromium browsing driver of bench/paper: runs outside the VE (host Python, no packages).

  python3 browse.py HOST PORT
      Connects to Chromium's DevTools on HOST:PORT, loads the page the browser was started on
      (the site's home page) if it is not loaded yet, follows every first-level link (the <a
      href> of the home page) and returns with history.back() after each, waiting for each page
      to load, then closes the browser. Prints a JSON line: the links followed and the pages
      loaded.

A WebSocket client of its own (RFC 6455, text frames, client-masked) keeps the driver free of
packages; the DevTools protocol needs nothing more.
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request


class WebSocket:
    def __init__(self, url):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"DevTools refused the WebSocket: {head.decode(errors='replace')}")

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket")
            buf += chunk
        return buf

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class Page:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_load(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            for i, m in enumerate(self.events):
                if m.get("method") == "Page.loadEventFired":
                    del self.events[: i + 1]
                    return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError("the page did not load")

    def evaluate(self, expr):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")


def main(host, port):
    base = f"http://{host}:{port}"
    targets = []
    for _ in range(300):  # Chromium may still be starting
        try:
            targets = json.load(urllib.request.urlopen(f"{base}/json/list", timeout=2))
            if any(t.get("type") == "page" for t in targets):
                break
        except OSError:
            pass
        time.sleep(0.1)
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        sys.exit(f"browse.py: no page target at {base}")
    # The URL as the browser reached it: DevTools may name its own address (127.0.0.1).
    ws_url = pages[0]["webSocketDebuggerUrl"].replace("127.0.0.1", host).replace("localhost", host)
    page = Page(ws_url)
    page.call("Page.enable")
    home = pages[0]["url"]
    if page.evaluate("document.readyState") != "complete":
        page.wait_load()
    page.events.clear()  # a load event of the home page that raced the check above
    links = page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => a.href)") or []
    if not links:
        sys.exit(f"browse.py: the home page {home} has no links")
    loads = 1
    for link in links:
        page.call("Page.navigate", url=link)
        page.wait_load()
        page.evaluate("history.back()")
        page.wait_load()
        loads += 2
        if page.evaluate("location.href") != home:
            sys.exit(f"browse.py: back from {link} did not return to {home}")
    # End the browser as a user would (it writes its profile on the way out).
    version = json.load(urllib.request.urlopen(f"{base}/json/version", timeout=5))
    browser = Page(version["webSocketDebuggerUrl"].replace("127.0.0.1", host).replace("localhost", host))
    try:
        browser.call("Browser.close")
    except ConnectionError:
        pass  # it may close the connection before it answers
    print(json.dumps({"home": home, "links_followed": len(links), "pages_loaded": loads}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
