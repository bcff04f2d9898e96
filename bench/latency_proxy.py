"""A TCP proxy on loopback that delays every byte by a fixed time each way.

Run: `python bench/latency_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS [SECONDS]`.
It stands in for a network between the engine and its database where this
machine's kernel cannot add latency itself (no `netem`): each chunk read from
one side is written to the other `DELAY_MS` after it arrived, in order, so a
round trip costs about twice `DELAY_MS` more than on loopback. One thread per
direction and connection; it exits after SECONDS (default 600), so a
forgotten proxy does not outlive the measurement. Loopback only.
"""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Copy `source` to `sink`, each chunk held until `delay` after it was read."""
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = threading.Condition()

    def writer() -> None:
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, chunk = queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not chunk:
                sink.shutdown(socket.SHUT_WR)
                return
            sink.sendall(chunk)

    threading.Thread(target=writer, daemon=True).start()
    while True:
        try:
            chunk = source.recv(65536)
        except OSError:
            chunk = b""
        with ready:
            queue.append((time.monotonic() + delay, chunk))
            ready.notify()
        if not chunk:
            return


def main() -> None:
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    delay = float(sys.argv[3]) / 1000.0
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
    server = socket.create_server(("127.0.0.1", listen_port))
    server.settimeout(1.0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client, _ = server.accept()
        except TimeoutError:
            continue
        upstream = socket.create_connection(("127.0.0.1", target_port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(client, upstream, delay), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client, delay), daemon=True).start()


if __name__ == "__main__":
    main()
