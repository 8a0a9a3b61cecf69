#!/usr/bin/env python3
"""A tiny authoritative DNS server for tests (UDP, Python 3 standard library).

    dns_server.py --host 172.17.0.1 --port 0 --answers NAME=IP,IP[;NAME=IP] \
                  --record FILE --port-file FILE

A queries for a listed NAME are answered with its addresses in turn, one per
query and TTL 0, so every lookup sees the next address (a CDN rotating its
addresses). AAAA queries for a listed name get an empty answer; any other name
gets NXDOMAIN. Every query is appended to --record as one JSON line.
"""

import argparse
import json
import os
import socket
import struct
import time


def parse_question(data):
    qdcount = struct.unpack("!H", data[4:6])[0]
    if qdcount < 1:
        return None
    labels, i = [], 12
    while i < len(data):
        n = data[i]
        if n == 0:
            i += 1
            break
        labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", data[i:i + 4])
    return ".".join(labels).lower(), qtype, i + 4


def answer(data, question_end, rcode, addresses):
    txid = data[:2]
    flags = 0x8400 | rcode  # response, authoritative
    header = txid + struct.pack("!HHHHH", flags, 1, len(addresses), 0, 0)
    body = data[12:question_end]
    for address in addresses:
        body += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(address)
    return header + body


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answers", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()

    table = {}
    for item in args.answers.split(";"):
        name, _, ips = item.partition("=")
        table[name.strip().lower().rstrip(".")] = [ip.strip() for ip in ips.split(",") if ip.strip()]
    served = {name: 0 for name in table}

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(sock.getsockname()[1]))
    os.replace(tmp, args.port_file)

    while True:
        data, peer = sock.recvfrom(4096)
        q = parse_question(data)
        if q is None:
            continue
        name, qtype, end = q
        entry = {"time": time.time(), "peer": peer[0], "name": name, "qtype": qtype}
        if name in table:
            if qtype == 1:
                addresses = table[name]
                chosen = addresses[served[name] % len(addresses)]
                served[name] += 1
                reply = answer(data, end, 0, [chosen])
                entry["answer"] = chosen
            else:
                reply = answer(data, end, 0, [])
        else:
            reply = answer(data, end, 3, [])
            entry["answer"] = "NXDOMAIN"
        with open(args.record, "a") as f:
            f.write(json.dumps(entry) + "\n")
        sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
