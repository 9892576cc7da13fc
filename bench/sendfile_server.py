"""A minimal HTTP/1.1 server that answers every GET with one file through os.sendfile.

It is the loopback ceiling for downloads: no registry does less work per byte than
the kernel copying page-cache pages to the socket. Run as
``python bench/sendfile_server.py FILE PORT``; it prints ``ready`` once listening.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

MAX_HEADER = 64 * 1024


def serve_connection(conn: socket.socket, path: str, size: int) -> None:
    with conn:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                if len(buffer) > MAX_HEADER:
                    return
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            method = head.split(b" ", 1)[0]
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: " + str(size).encode() + b"\r\n\r\n"
            )
            if method != b"GET":
                continue
            with open(path, "rb") as handle:
                offset = 0
                while offset < size:
                    sent = os.sendfile(conn.fileno(), handle.fileno(), offset, size - offset)
                    if sent == 0:
                        return
                    offset += sent


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    size = os.path.getsize(path)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(conn, path, size), daemon=True).start()


if __name__ == "__main__":
    main()
