"""A small authoritative DNS server over UDP for the integration tests.

Standard library only. Answers A and AAAA queries from a table the test
changes while it runs; an unknown name is NXDOMAIN, a known name without an
address of the asked family is an empty NOERROR answer (NODATA).

    with DnsResponder() as dns:          # 127.0.0.1, ephemeral port
        dns.set("old.test", ["10.0.0.1", "::1"], ttl=1)
        ... point dns.servers at f"127.0.0.1:{dns.port}" ...
        dns.silent(True)                 # a dead resolver: queries dropped
        assert dns.queries[("old.test", "A")] >= 1

As a script it serves fixed records until interrupted:

    python3 dns_responder.py --port 5353 old.test=10.0.0.1,::1 --ttl 30
"""

import argparse
import collections
import ipaddress
import signal
import socket
import struct
import threading

TYPE_A, TYPE_AAAA, TYPE_ANY = 1, 28, 255
CLASS_IN, CLASS_ANY = 1, 255
RCODE_OK, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 0, 1, 3, 4, 5
TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA", TYPE_ANY: "ANY"}

HEADER = struct.Struct("!HHHHHH")   # id, flags, qdcount, ancount, nscount, arcount
# An answer's owner name is always the question's, at offset 12: 0xC00C.
ANSWER = struct.Struct("!HHHIH")    # name pointer, type, class, ttl, rdlength


class FormatError(Exception):
    pass


def type_name(qtype):
    return TYPE_NAMES.get(qtype, "TYPE%d" % qtype)


def normalize(name):
    return name.rstrip(".").lower()


def parse_question(packet):
    """(qname, qtype, qclass, end offset) of the one question after the header."""
    labels, off = [], HEADER.size
    while True:
        if off >= len(packet):
            raise FormatError("question runs past the end")
        n = packet[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0:
            raise FormatError("compressed or extended label in a question")
        if off + n > len(packet):
            raise FormatError("label runs past the end")
        labels.append(packet[off:off + n].decode("ascii", "replace"))
        off += n
        if off - HEADER.size > 255:
            raise FormatError("name longer than 255 bytes")
    if off + 4 > len(packet):
        raise FormatError("question without type and class")
    qtype, qclass = struct.unpack_from("!HH", packet, off)
    # Whatever follows (an EDNS OPT record in the additional section) is
    # not needed to answer and is ignored.
    return ".".join(labels), qtype, qclass, off + 4


class DnsResponder:
    def __init__(self, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.1)   # how often the thread notices close()
        self.host = host
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._records = {}           # name -> (v4 packed list, v6 packed list, ttl)
        self._queries = collections.Counter()
        self._silent = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-responder", daemon=True)
        self._thread.start()

    def set(self, name, addrs, ttl=60):
        """NAME answers ADDRS (IPv4 and/or IPv6 strings) with TTL seconds."""
        v4, v6 = [], []
        for a in addrs:
            ip = ipaddress.ip_address(a)
            (v4 if ip.version == 4 else v6).append(ip.packed)
        with self._lock:
            self._records[normalize(name)] = (v4, v6, int(ttl))

    def remove(self, name):
        """NAME is NXDOMAIN again."""
        with self._lock:
            self._records.pop(normalize(name), None)

    def silent(self, on=True):
        """While on, queries are counted but never answered."""
        with self._lock:
            self._silent = on

    @property
    def queries(self):
        """A copy of the count of queries per (name, type), e.g. ("a.test", "AAAA")."""
        with self._lock:
            return collections.Counter(self._queries)

    def close(self):
        self._closing.set()
        self._thread.join()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _serve(self):
        while not self._closing.is_set():
            try:
                packet, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                if self._closing.is_set():
                    return
                continue
            reply = self._answer(packet)
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, packet):
        """The reply to PACKET, or None to stay silent."""
        if len(packet) < HEADER.size:
            return None
        qid, flags, qdcount, _, _, _ = HEADER.unpack_from(packet)
        if flags & 0x8000:           # a response, not a query
            return None
        opcode, rd = flags & 0x7800, flags & 0x0100
        question, rcode = None, RCODE_OK
        if opcode != 0:
            rcode = RCODE_NOTIMP
        elif qdcount != 1:
            rcode = RCODE_FORMERR
        else:
            try:
                question = parse_question(packet)
            except FormatError:
                rcode = RCODE_FORMERR
        with self._lock:
            if question is not None:
                qname, qtype, qclass, end = question
                self._queries[(normalize(qname), type_name(qtype))] += 1
                record = self._records.get(normalize(qname))
            if self._silent:
                return None
        if question is None:
            return HEADER.pack(qid, 0x8000 | opcode | rd | rcode, 0, 0, 0, 0)

        answers = []
        if qclass not in (CLASS_IN, CLASS_ANY):
            rcode = RCODE_REFUSED
        elif record is None:
            rcode = RCODE_NXDOMAIN
        else:
            v4, v6, ttl = record
            if qtype in (TYPE_A, TYPE_ANY):
                answers += [(TYPE_A, a) for a in v4]
            if qtype in (TYPE_AAAA, TYPE_ANY):
                answers += [(TYPE_AAAA, a) for a in v6]
        # QR, AA, RD as asked; never TC: every answer here fits in 512 bytes.
        out = [HEADER.pack(qid, 0x8400 | rd | rcode, 1, len(answers), 0, 0),
               packet[HEADER.size:end]]
        for rtype, rdata in answers:
            out.append(ANSWER.pack(0xC00C, rtype, CLASS_IN, ttl, len(rdata)) + rdata)
        return b"".join(out)


def main():
    ap = argparse.ArgumentParser(description="Serve fixed A/AAAA records over UDP.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    ap.add_argument("--ttl", type=int, default=60)
    ap.add_argument("records", nargs="*", metavar="NAME=ADDR[,ADDR...]")
    args = ap.parse_args()

    dns = DnsResponder(args.host, args.port)
    for rec in args.records:
        name, sep, addrs = rec.partition("=")
        if not sep or not name:
            ap.error("expected NAME=ADDR[,ADDR...], got %r" % rec)
        dns.set(name, [a for a in addrs.split(",") if a], args.ttl)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("listening on %s port %d" % (args.host, dns.port), flush=True)
    stop.wait()
    dns.close()


if __name__ == "__main__":
    main()
