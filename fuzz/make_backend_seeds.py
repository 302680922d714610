#!/usr/bin/env python3
"""Hand-built seeds for fuzz_backend (its input format is described at the top
of fuzz_backend.cpp): complete handshakes for the main configurations, with
packets on the tx ring, buffers on the rx ring and a control request, so the
fuzzer starts from connected vifs. Usage: make_backend_seeds.py OUT_DIR"""
import hashlib
import os
import struct
import sys

# Keys (indices into front_keys[] in fuzz_backend.cpp).
STATE, TX_REF, RX_REF, EVTCHN, EVTCHN_TX, EVTCHN_RX, NUM_QUEUES = 0, 1, 2, 3, 4, 5, 6
Q0_TX, Q0_RX, Q0_EVT, Q1_TX, Q1_RX, Q1_EVT = 7, 8, 9, 10, 11, 12
SG, RX_COPY, RX_NOTIFY, GSO4, GSO6, NO_CSUM, CTRL_REF, CTRL_EVT, MCAST = 13, 14, 15, 16, 17, 18, 19, 20, 21
FIRST_REF = 8  # emu::first_free_gref: the 8 pages get refs 8..15 in order
SRING_HDR = 64


def key(k, v):
    v = v.encode()
    return bytes([0, k, len(v)]) + v


def res(k, r):
    return bytes([1, k, r])


def page(p, off, data):
    out = b""
    while data:
        chunk, data = data[:255], data[255:]
        out += bytes([3, p]) + struct.pack("<H", off) + bytes([len(chunk)]) + chunk
        off += len(chunk)
    return out


def notify(port):
    return bytes([4, port])


def state(s):
    return bytes([7, s])


def frame(n):
    eth = bytes.fromhex("00163e000100" "00163e0001ff" "0800")
    ip = bytes.fromhex("4500") + struct.pack(">H", n - 14) + bytes.fromhex("00004000401100000a0000010a000002")
    body = eth + ip
    return body + bytes((i * 7) & 0xFF for i in range(n - len(body)))


def tx_ring(p, reqs):
    """reqs: (data page, offset, flags, id, size)"""
    out = b""
    for i, (dp, off, flags, rid, size) in enumerate(reqs):
        out += page(p, SRING_HDR + 12 * i, struct.pack("<IHHHH", FIRST_REF + dp, off, flags, rid, size))
    return out + page(p, 0, struct.pack("<I", len(reqs)))


def rx_ring(p, pages):
    out = b""
    for i, dp in enumerate(pages):
        out += page(p, SRING_HDR + 8 * i, struct.pack("<HHI", i, 0, FIRST_REF + dp))
    return out + page(p, 0, struct.pack("<I", len(pages)))


def ctrl_ring(p, reqs):
    out = b""
    for i, (t, d0, d1, d2) in enumerate(reqs):
        out += page(p, SRING_HDR + 16 * i, struct.pack("<HHIII", i + 1, t, d0, d1, d2))
    return out + page(p, 0, struct.pack("<I", len(reqs)))


def single_queue(split=False):
    s = res(TX_REF, 0) + res(RX_REF, 1)
    s += (res(EVTCHN_TX, 0) + res(EVTCHN_RX, 1)) if split else res(EVTCHN, 0)
    return s + key(RX_COPY, "1") + key(SG, "1") + key(RX_NOTIFY, "1")


def traffic(tx_page=0, rx_page=1, port=0, data_pages=(2, 3, 4), rx_pages=(5, 6)):
    s = page(data_pages[0], 0, frame(60)) + page(data_pages[1], 0, frame(200)[:200])
    s += tx_ring(tx_page, [(data_pages[0], 0, 0, 0, 60),
                           (data_pages[1], 0, 1 << 2, 1, 300), (data_pages[2], 0, 0, 2, 100)])
    s += rx_ring(rx_page, list(rx_pages))
    return s + notify(port) + bytes([5])


seeds = {
    # copy mode, sg, split channels advertised but one channel used
    "copy-single": bytes([0x06, 0]) + single_queue() + state(4) + traffic(),
    "copy-split": bytes([0x06, 0]) + single_queue(split=True) + state(4) + traffic() + notify(1),
    "map-gen": bytes([0x87, 20]) + single_queue() + state(4) + traffic(),
    "gso-extras": bytes([0x06, 0]) + single_queue() + key(GSO4, "1") + state(4)
    + page(2, 0, frame(200))
    + tx_ring(0, [(2, 0, (1 << 3), 0, 200)])  # txf::extra_info, then an extra slot
    + page(0, SRING_HDR + 12, struct.pack("<BBHBBH", 1, 0, 1400, 1, 0, 0))  # GSO extra: tcpv4, mss 1400
    + page(0, 0, struct.pack("<I", 2)) + notify(0),
    "multi-queue": bytes([0x26, 0]) + key(NUM_QUEUES, "2") + res(Q0_TX, 0) + res(Q0_RX, 1) + res(Q0_EVT, 0)
    + res(Q1_TX, 2) + res(Q1_RX, 3) + res(Q1_EVT, 1) + key(RX_COPY, "1") + key(SG, "1") + state(4)
    + traffic(0, 1, 0, (4, 5, 6), (7,)),
    "ctrl-ring": bytes([0x1E, 0]) + single_queue() + res(CTRL_REF, 7) + res(CTRL_EVT, 2) + state(4)
    + page(6, 0, struct.pack("<IHH", FIRST_REF + 5, 0, 0))  # a gref list naming page 5
    + ctrl_ring(7, [(1, 0, 0, 0), (8, 0, 0, 0), (9, 0, FIRST_REF + 6, 1), (7, 1, 0, 0), (10, 0, FIRST_REF + 6, 1)])
    + notify(2) + bytes([5]),
    "bad-num-queues": bytes([0x06, 0]) + key(NUM_QUEUES, "9") + single_queue() + state(4),
    "reconnect": bytes([0x06, 0]) + single_queue() + state(4) + traffic() + state(5) + state(6)
    + state(1) + state(4) + notify(0),
    "missing-rx-copy": bytes([0x06, 0]) + res(TX_REF, 0) + res(RX_REF, 1) + res(EVTCHN, 0) + state(4),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "backend")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
