#!/usr/bin/env python3
"""Tiny TCP/UDP recorder for network tests. Python 3 standard library only.

    recorder.py --tcp HOST:PORT [--tcp ...] --udp HOST:PORT [--udp ...]
                --record FILE [--port-file FILE] [--max-bytes N] [--dns-refuse]

PORT may be 0 (the kernel picks one). IPv6 hosts are written in brackets:
--tcp [::1]:0. Every TCP connection and every UDP datagram received is
appended as one JSON line to --record:

    {"proto": "tcp", "local": {"host": ..., "port": ...},
     "peer": {"host": ..., "port": ...}, "time": ..., "bytes": N,
     "hex": "...", "text": "..."}

TCP connections get "patina-recorder-ok\\n" and are closed. UDP datagrams get
the same reply, except DNS queries when --dns-refuse is given: those get a
REFUSED answer (and the record carries "dns_qname").

--port-file receives, once every socket is listening (written atomically):

    {"tcp": [port, ...], "udp": [port, ...],
     "listeners": [{"proto": "tcp", "host": ..., "port": ..., "requested": ...}]}

with ports in the order the options were given.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

REPLY = b"patina-recorder-ok\n"


class Recorder:
    def __init__(self, path, max_bytes):
        self.path = path
        self.max_bytes = max_bytes
        self.lock = threading.Lock()

    def write(self, proto, local, peer, data, extra=None):
        head = data[: self.max_bytes]
        entry = {
            "proto": proto,
            "local": {"host": local[0], "port": local[1]},
            "peer": {"host": peer[0], "port": peer[1]} if peer else None,
            "time": time.time(),
            "bytes": len(data),
            "hex": head.hex(),
            "text": head.decode("utf-8", "replace"),
        }
        if extra:
            entry.update(extra)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()


def parse_addr(spec):
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("bad address %r (want [HOST]:PORT)" % spec)
        return host, int(rest[1:])
    host, sep, port = spec.rpartition(":")
    if not sep or not host:
        raise ValueError("bad address %r (want HOST:PORT)" % spec)
    return host, int(port)


def make_socket(kind, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        except OSError:
            pass
    sock.bind((host, port))
    return sock


def dns_qname(data):
    """Best effort: the first question name of a DNS query, or None."""
    try:
        if len(data) < 12:
            return None
        flags = int.from_bytes(data[2:4], "big")
        qdcount = int.from_bytes(data[4:6], "big")
        if flags & 0x8000 or qdcount < 1:
            return None
        labels, i = [], 12
        while True:
            n = data[i]
            if n == 0:
                i += 1
                break
            if n & 0xC0:
                return None
            labels.append(data[i + 1:i + 1 + n].decode("ascii"))
            i += 1 + n
        qtype = int.from_bytes(data[i:i + 2], "big")
        return ".".join(labels), qtype, i + 4
    except (IndexError, UnicodeDecodeError):
        return None


def dns_refused(data, question_end):
    header = bytearray(data[:12])
    flags = int.from_bytes(data[2:4], "big")
    flags = 0x8000 | (flags & 0x7900) | 0x0080 | 5  # QR, keep opcode+RD, RA, REFUSED
    header[2:4] = flags.to_bytes(2, "big")
    header[4:6] = (1).to_bytes(2, "big")
    header[6:12] = bytes(6)
    return bytes(header) + data[12:question_end]


def serve_tcp_conn(rec, conn, peer, local):
    try:
        conn.settimeout(1.0)
        data = b""
        try:
            while len(data) < rec.max_bytes:
                chunk = conn.recv(rec.max_bytes - len(data))
                if not chunk:
                    break
                data += chunk
                conn.settimeout(0.2)  # got something: wait only a little for more
        except (socket.timeout, OSError):
            pass
        rec.write("tcp", local, peer[:2], data)
        try:
            conn.sendall(REPLY)
        except OSError:
            pass
    finally:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


def serve_tcp(rec, sock):
    local = sock.getsockname()[:2]
    while True:
        try:
            conn, peer = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_conn, args=(rec, conn, peer, local), daemon=True).start()


def serve_udp(rec, sock, dns_refuse):
    local = sock.getsockname()[:2]
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return
        q = dns_qname(data)
        extra = {"dns_qname": q[0], "dns_qtype": q[1]} if q else None
        rec.write("udp", local, peer[:2], data, extra)
        try:
            if dns_refuse and q:
                sock.sendto(dns_refused(data, q[2]), peer)
            else:
                sock.sendto(REPLY, peer)
        except OSError:
            pass


def write_port_file(path, obj):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Record TCP connections and UDP datagrams")
    ap.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT")
    ap.add_argument("--udp", action="append", default=[], metavar="HOST:PORT")
    ap.add_argument("--record", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--max-bytes", type=int, default=512, help="bytes of payload kept per record")
    ap.add_argument("--dns-refuse", action="store_true", help="answer DNS queries over UDP with REFUSED")
    args = ap.parse_args(argv)
    if not args.tcp and not args.udp:
        ap.error("give at least one --tcp or --udp address")

    rec = Recorder(args.record, args.max_bytes)
    open(args.record, "a").close()
    listeners, threads, ports = [], [], {"tcp": [], "udp": []}
    for proto, specs in (("tcp", args.tcp), ("udp", args.udp)):
        for spec in specs:
            host, port = parse_addr(spec)
            if proto == "tcp":
                sock = make_socket(socket.SOCK_STREAM, host, port)
                sock.listen(64)
                t = threading.Thread(target=serve_tcp, args=(rec, sock), daemon=True)
            else:
                sock = make_socket(socket.SOCK_DGRAM, host, port)
                t = threading.Thread(target=serve_udp, args=(rec, sock, args.dns_refuse), daemon=True)
            bound = sock.getsockname()[1]
            ports[proto].append(bound)
            listeners.append({"proto": proto, "host": host, "port": bound, "requested": port})
            threads.append(t)
    for t in threads:
        t.start()
    info = dict(ports, listeners=listeners)
    if args.port_file:
        write_port_file(args.port_file, info)
    sys.stderr.write("recorder: listening %s\n" % json.dumps(listeners))
    sys.stderr.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
