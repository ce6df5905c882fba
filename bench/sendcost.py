"""The floor under one delivery: what a bare loopback TCP `send` costs on this machine.

The hub's sweep at one event per send is one `send` per client
(docs/architecture.md, "Fan-out"); this times the same syscall with no
Python around it worth naming: N connected sockets, one small send to each,
CPU time per send, once with the peers idle (nothing waiting on them) and
once with a reader process waiting in epoll on all of them (what a load
client or a proxy does, and whose wake-ups the kernel charges to the sender
over loopback). `python -m bench.sendcost [N]`; `python -m bench` reports it.
"""

from __future__ import annotations

import multiprocessing
import select
import socket
import sys
import time
from multiprocessing.synchronize import Event

# The size of one SSE reading event (the demo driver's six metrics).
PAYLOAD = b"event:reading\nid:1763712000125-0\ndata:" + b"x" * 260 + b"\n\n"
ROUNDS = 5


def _reader(port: int, count: int, ready: Event, stop: Event) -> None:
    """Connect `count` sockets and read whatever arrives, waiting in epoll."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    poller = select.epoll()
    by_fd = {}
    for sock in socks:
        sock.setblocking(False)
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = sock
    ready.set()
    buf = bytearray(65536)
    while not stop.is_set():
        for fd, _ in poller.poll(0.2):
            by_fd[fd].recv_into(buf)


def _rounds(socks: list[socket.socket]) -> float:
    """The median CPU microseconds per send over a few rounds, one send per socket."""
    per_send = []
    for _ in range(ROUNDS):
        cpu = time.process_time()
        for sock in socks:
            sock.send(PAYLOAD)
        per_send.append((time.process_time() - cpu) / len(socks) * 1e6)
        time.sleep(0.3)
    return sorted(per_send)[len(per_send) // 2]


def measure(count: int) -> dict[str, float]:
    """CPU us per send: peers idle, and peers read by another process waiting in epoll."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    out = {}
    # Peers idle: connected in this process, never read (the data just queues).
    peers = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    accepted = [listener.accept()[0] for _ in range(count)]
    out["idle_peer_us"] = _rounds(accepted)
    for sock in peers + accepted:
        sock.close()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    reader = multiprocessing.Process(target=_reader, args=(port, count, ready, stop))
    reader.start()
    accepted = [listener.accept()[0] for _ in range(count)]
    ready.wait(30)
    out["epoll_reader_us"] = _rounds(accepted)
    stop.set()
    reader.join(10)
    for sock in accepted:
        sock.close()
    listener.close()
    return out


def figures(count: int) -> list:
    """Both costs as report figures."""
    from bench.offline import Figure

    got = measure(count)
    cond = f"{count:,} loopback TCP connections, one {len(PAYLOAD)}-byte send each, median of 5"
    return [
        Figure("bare send, peer idle", got["idle_peer_us"], "us CPU/send", cond),
        Figure(
            "bare send, peer waiting in epoll",
            got["epoll_reader_us"],
            "us CPU/send",
            cond + "; the reader's wake-ups are charged to the sender",
        ),
    ]


if __name__ == "__main__":
    print(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
