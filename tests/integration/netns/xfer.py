#!/usr/bin/env python3
"""Data transfers whose bytes are checked end to end (vifkit netns tests).

  xfer.py recv tcp|udp ADDR PORT BYTES   listen, receive, print "<bytes> <sha256>"
  xfer.py send tcp|udp ADDR PORT BYTES SEED
  xfer.py expect BYTES SEED              print "<bytes> <sha256>" of what send sends
  xfer.py l2recv IFACE SECONDS           count received frames per destination MAC (JSON)
  xfer.py l2send IFACE DST_MAC COUNT     send COUNT Ethernet frames to DST_MAC

UDP datagrams carry a sequence number; the receiver orders them and reports
the sha256 of the payload stream, so loss or corruption shows up as a mismatch.
"""
import hashlib, json, random, socket, struct, sys, time

UDP_PAYLOAD = 1200


def stream(nbytes, seed):
    rng = random.Random(int(seed))
    left = nbytes
    while left > 0:
        n = min(65536, left)
        yield rng.randbytes(n)
        left -= n


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def recv(proto, addr, port, nbytes, timeout=20):
    h = hashlib.sha256()
    got = 0
    if proto == "tcp":
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        s.settimeout(timeout)
        print("ready", flush=True)
        c, _ = s.accept()
        c.settimeout(timeout)
        while got < nbytes:
            b = c.recv(1 << 20)
            if not b:
                break
            h.update(b)
            got += len(b)
    else:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((addr, port))
        s.settimeout(3)
        print("ready", flush=True)
        parts = {}
        want = (nbytes + UDP_PAYLOAD - 1) // UDP_PAYLOAD
        try:
            while len(parts) < want:
                d = s.recv(65536)
                seq = struct.unpack("!I", d[:4])[0]
                parts[seq] = d[4:]
        except socket.timeout:
            pass
        for i in sorted(parts):
            h.update(parts[i])
            got += len(parts[i])
    print(got, h.hexdigest(), flush=True)


def send(proto, addr, port, nbytes, seed):
    data = b"".join(stream(nbytes, seed))
    if proto == "tcp":
        s = socket.create_connection((addr, port), timeout=20)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.close()
    else:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        for seq, off in enumerate(range(0, len(data), UDP_PAYLOAD)):
            s.sendto(struct.pack("!I", seq) + data[off:off + UDP_PAYLOAD], (addr, port))
            if seq % 32 == 31:
                time.sleep(0.002)  # paced: this checks bytes, not capacity


def expect(nbytes, seed):
    h = hashlib.sha256()
    for b in stream(nbytes, seed):
        h.update(b)
    print(nbytes, h.hexdigest())


def l2recv(iface, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))  # local experimental ethertype
    s.bind((iface, 0))
    s.settimeout(0.2)
    counts = {}
    print("ready", flush=True)
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        dst = ":".join(f"{b:02x}" for b in f[:6])
        counts[dst] = counts.get(dst, 0) + 1
    print(json.dumps(counts), flush=True)


def l2send(iface, dst, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src = s.getsockname()[4]
    frame = bytes.fromhex(dst.replace(":", "")) + src + struct.pack("!H", 0x88B5) + bytes(50)
    for _ in range(int(count)):
        s.send(frame)
        time.sleep(0.001)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "recv":
        recv(a[1], a[2], int(a[3]), int(a[4]))
    elif a[0] == "send":
        send(a[1], a[2], int(a[3]), int(a[4]), a[5])
    elif a[0] == "expect":
        expect(int(a[1]), a[2])
    elif a[0] == "l2recv":
        l2recv(a[1], a[2])
    elif a[0] == "l2send":
        l2send(a[1], a[2], a[3])
    else:
        sys.exit(__doc__)
