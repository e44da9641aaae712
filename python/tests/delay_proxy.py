"""A loopback TCP proxy that adds latency to every HTTP request, as a real
object store has: the first bytes of each request (client data after the
server last answered) are held for a delay before they go on.

    python delay_proxy.py TARGET_PORT DELAY_MS STATUS_FILE [BYTES_FILE]

prints the port it listens on, then serves until killed. STATUS_FILE is
rewritten with the most requests it has held at once (a client that keeps
several requests in flight shows more than one); BYTES_FILE, if given,
with the bytes the server has sent so far. Used by the object-store tests
and by ``benches/object_store/run.py``."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time


def serve(
    target_port: int, delay: float, status: str | None = None, sent: str | None = None
) -> int:
    """Start the proxy to ``target_port`` on threads of this process; the
    port it listens on."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    counts = {"now": 0, "most": 0, "sent": 0}
    lock = threading.Lock()

    def count_sent(n: int) -> None:
        with lock:
            counts["sent"] += n
            tmp = f"{sent}.tmp"
            with open(tmp, "w") as f:
                f.write(str(counts["sent"]))
            os.replace(tmp, sent)

    def held(change: int) -> None:
        with lock:
            counts["now"] += change
            if counts["now"] > counts["most"]:
                counts["most"] = counts["now"]
                if status:
                    with open(status, "w") as f:
                        f.write(str(counts["most"]))

    def pump(src, dst, state, upstream):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with state["lock"]:
                    if upstream and state["answered"]:
                        state["answered"] = False
                        held(1)
                        start = True
                    else:
                        start = False
                    if not upstream and not state["answered"]:
                        state["answered"] = True
                        held(-1)
                if start:
                    time.sleep(delay)
                dst.sendall(data)
                if sent and not upstream:
                    count_sent(len(data))
        except OSError:
            pass
        finally:
            with state["lock"]:
                if not state["answered"]:
                    state["answered"] = True
                    held(-1)
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept():
        while True:
            client, _ = listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", target_port))
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"answered": True, "lock": threading.Lock()}
            threading.Thread(target=pump, args=(client, server, state, True), daemon=True).start()
            threading.Thread(target=pump, args=(server, client, state, False), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


if __name__ == "__main__":
    port = serve(
        int(sys.argv[1]),
        float(sys.argv[2]) / 1000,
        sys.argv[3] if len(sys.argv) > 3 else None,
        sys.argv[4] if len(sys.argv) > 4 else None,
    )
    print(port, flush=True)
    threading.Event().wait()
