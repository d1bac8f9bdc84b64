# permessage-deflate clients for tests/integration/ws_deflate.c (run with
# /usr/bin/python3: Debian's python3-websockets). Usage: ws_deflate.py CASE PORT
#   echo   every negotiation variant (Autobahn 12/13: window bits 9..15 each
#          way, no_context_takeover each way, offer lists) with text and
#          binary echo around the thresholds, up to 1 MiB for the default offer
#   raw    a raw socket: RSV1 on what the server sends (min_length), a zip
#          bomb (1009), data that is not DEFLATE (1007), RSV1 on a
#          continuation (1002), RSV1 without the extension (1002), an offer
#          list where the first is declined
#   bcast  compressed (several windows, with and without context takeover)
#          and uncompressed clients get the same broadcasts, and pushes
#          after them still decode (context reset after a shared frame)
#   off    compression off on the server: no extension in the 101
#   shared websocket_compression_context_takeover 0: server_no_context_takeover
#          in every answer, each message inflates on its own
# Prints "ok CASE" at the end; any failure raises (exit status 1).
import asyncio
import base64
import os
import random
import socket
import struct
import sys
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory as PMD

CASE, PORT = sys.argv[1], int(sys.argv[2])
URL = 'ws://127.0.0.1:%d/ws' % PORT
rnd = random.Random(7)


def text(n):
    words = ['alpha', 'beta', 'gamma', 'delta', '\u00e9t\u00e9', '\u4e2d\u6587', 'x']
    s = ''
    while len(s) < n:
        s += rnd.choice(words) + ' '
    return s[:n]


def noise(n):
    return bytes(rnd.getrandbits(8) for _ in range(n)) if n < 70000 else os.urandom(n)


async def echo_variant(factory, sizes, label):
    async with websockets.connect(URL, extensions=[factory], compression=None,
                                  max_size=None, open_timeout=10) as ws:
        ext = ws.response_headers.get('Sec-WebSocket-Extensions', '')
        assert ext.startswith('permessage-deflate'), (label, ext)
        for n in sizes:
            for msg in (text(n), noise(n), b'\0' * n):
                await ws.send(msg)
                r = await asyncio.wait_for(ws.recv(), 20)
                assert r == msg, (label, n, type(msg))
            # The same message again: with context takeover it references the first copy.
            m = text(n)
            for _ in range(2):
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 20) == m, (label, n)
        return ext


async def case_echo():
    small = [0, 1, 63, 64, 65, 125, 126, 127, 1000, 65535, 65536]
    variants = [
        (PMD(), small + [1 << 20]),
        (PMD(client_max_window_bits=None), small),
        (PMD(server_no_context_takeover=True), small),
        (PMD(client_no_context_takeover=True), small),
        (PMD(server_no_context_takeover=True, client_no_context_takeover=True), small),
    ]
    for b in range(9, 16):
        variants.append((PMD(server_max_window_bits=b), [64, 1000, 65536]))
        variants.append((PMD(client_max_window_bits=b), [64, 1000, 65536]))
    variants.append((PMD(server_no_context_takeover=True, client_no_context_takeover=True,
                         server_max_window_bits=9, client_max_window_bits=9), [64, 65536, 300000]))
    exts = []
    for f, sizes in variants:
        exts.append(await echo_variant(f, sizes, repr(f.get_request_params())))
    assert exts[2] == 'permessage-deflate; server_no_context_takeover', exts[2]
    assert exts[4] == ('permessage-deflate; server_no_context_takeover; '
                       'client_no_context_takeover'), exts[4]
    assert 'server_max_window_bits=9' in exts[5], exts[5]
    assert 'client_max_window_bits=9' in exts[6], exts[6]
    # An offer list: the first offer (unknown parameter) declined, the second taken.
    r = Raw('permessage-deflate; foo=1, permessage-deflate; client_no_context_takeover')
    assert ('\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n'
            in r.head), r.head
    r.s.close()
    print('variants', len(variants))


# ---- raw socket ----

class Raw:
    def __init__(self, offer):
        self.s = socket.create_connection(('127.0.0.1', PORT), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
               'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n' % key)
        if offer:
            req += 'Sec-WebSocket-Extensions: %s\r\n' % offer
        self.s.sendall((req + '\r\n').encode())
        head = b''
        while b'\r\n\r\n' not in head:
            c = self.s.recv(1)
            assert c, head
            head += c
        self.head = head.decode()
        assert self.head.startswith('HTTP/1.1 101 '), self.head
        self.inf = zlib.decompressobj(-15)

    def send(self, b0, payload):
        n = len(payload)
        h = bytes([b0])
        if n < 126:
            h += bytes([0x80 | n])
        elif n < 65536:
            h += bytes([0x80 | 126]) + struct.pack('>H', n)
        else:
            h += bytes([0x80 | 127]) + struct.pack('>Q', n)
        mask = os.urandom(4)
        self.s.sendall(h + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload)))

    def read(self, n):
        b = b''
        while len(b) < n:
            c = self.s.recv(n - len(b))
            assert c, 'connection closed after %d of %d bytes' % (len(b), n)
            b += c
        return b

    def frame(self):
        h = self.read(2)
        n = h[1] & 0x7f
        if n == 126:
            n = struct.unpack('>H', self.read(2))[0]
        elif n == 127:
            n = struct.unpack('>Q', self.read(8))[0]
        return h[0], self.read(n)

    def message(self):
        """Opcode, RSV1, the payload (inflated when RSV1 is set)."""
        b0, p = self.frame()
        rsv1 = (b0 >> 6) & 1
        if rsv1:
            p = self.inf.decompress(p + b'\x00\x00\xff\xff')
        return b0 & 0x0f, rsv1, p

    def expect_close(self):
        op, _, p = self.message()
        assert op == 8, op
        code = struct.unpack('>H', p[:2])[0]
        self.s.settimeout(5)
        assert self.s.recv(16) == b''
        self.s.close()
        return code


def compress(data, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    z = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert z.endswith(b'\x00\x00\xff\xff')
    return z[:-4]


def case_raw():
    r = Raw('permessage-deflate; client_max_window_bits')
    assert 'Sec-WebSocket-Extensions: permessage-deflate\r\n' in r.head, r.head
    # Below websocket_compression_min_length (64): uncompressed; at it: compressed.
    r.send(0x81, b'short text')
    assert r.message() == (1, 0, b'short text')
    long_text = b'compress me please ' * 20
    r.send(0x81, long_text)
    assert r.message() == (1, 1, long_text)
    # What does not get smaller goes uncompressed.
    rand = os.urandom(2000)
    r.send(0x82, rand)
    assert r.message() == (2, 0, rand)
    # A compressed message from the client, whole and fragmented (RSV1 on the first frame only).
    r.send(0xc1, compress(long_text))
    assert r.message() == (1, 1, long_text)
    z = compress(b'fragmented ' * 50)
    r.send(0x41, z[:5])
    r.send(0x00, z[5:12])
    r.send(0x80, z[12:])
    assert r.message() == (1, 1, b'fragmented ' * 50)
    # An empty compressed message: one 0x00 byte (RFC 7692 section 7.2.3).
    r.send(0xc2, b'\x00')
    assert r.message() == (2, 0, b'')
    # A compressed message ending in a final block (BFINAL), then one more with context.
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    r.send(0xc1, c.compress(b'final block ' * 10) + c.flush(zlib.Z_FINISH))
    assert r.message() == (1, 1, b'final block ' * 10)
    r.send(0xc1, compress(b'and after it ' * 10))
    assert r.message() == (1, 1, b'and after it ' * 10)
    # RSV1 on a continuation: 1002.
    r.send(0x41, z[:5])
    r.send(0xc0, z[5:])
    assert r.expect_close() == 1002
    # Not DEFLATE data: 1007 (see src/ws/deflate.c).
    r = Raw('permessage-deflate')
    r.send(0xc2, b'\xff\xff\xff\xff\xff')
    assert r.expect_close() == 1007
    # Compressed text that inflates to bad UTF-8: 1007.
    r = Raw('permessage-deflate')
    r.send(0xc1, compress(b'abc \xed\xa0\x80'))
    assert r.expect_close() == 1007
    # A zip bomb: 3 KiB on the wire, 3 MiB inflated, over the 2 MiB limit: 1009.
    r = Raw('permessage-deflate')
    bomb = compress(b'\0' * (3 << 20))
    assert len(bomb) < 4096, len(bomb)
    r.send(0xc2, bomb)
    assert r.expect_close() == 1009
    # The same bomb in 16 fragments: 1009 too.
    r = Raw('permessage-deflate')
    step = len(bomb) // 16 + 1
    parts = [bomb[i:i + step] for i in range(0, len(bomb), step)]
    for i, p in enumerate(parts):
        r.send((0x80 if i == len(parts) - 1 else 0) | (0x42 if i == 0 else 0), p)
    assert r.expect_close() == 1009
    # No extension agreed: RSV1 is a protocol error.
    r = Raw(None)
    assert 'Sec-WebSocket-Extensions' not in r.head
    r.send(0xc1, compress(long_text))
    assert r.expect_close() == 1002
    # Offers the server declines (server_max_window_bits=16, unknown parameter): none agreed.
    r = Raw('permessage-deflate; server_max_window_bits=16, permessage-deflate; x=1')
    assert 'Sec-WebSocket-Extensions' not in r.head, r.head
    r.send(0x81, long_text)
    assert r.message() == (1, 0, long_text)
    r.s.close()
    # server_max_window_bits=8: accepted; what comes back inflates with a 256-byte window.
    r = Raw('permessage-deflate; server_max_window_bits=8')
    assert 'server_max_window_bits=8' in r.head, r.head
    r.inf = zlib.decompressobj(-8)
    for m in (long_text, text(5000).encode(), long_text):
        r.send(0x82, m)
        assert r.message() == (2, 1, m)
    r.s.close()
    print('raw done')


# ---- broadcast ----

async def case_bcast():
    # Four of each: every owner has several connections per frame variant (the
    # broadcast sends each compressed frame to its group in one batch).
    offers = [None, PMD(), PMD(server_no_context_takeover=True), PMD(server_max_window_bits=9),
              PMD(server_max_window_bits=12, client_no_context_takeover=True), None, PMD()] * 4
    conns = []
    for o in offers:
        kw = {'extensions': [o]} if o else {}
        conns.append(await websockets.connect(URL, compression=None, max_size=None, **kw))
    for i, c in enumerate(conns):
        has = 'Sec-WebSocket-Extensions' in c.response_headers
        assert has == (offers[i] is not None), i
    raw = Raw('permessage-deflate')
    plain = Raw(None)
    msgs = [text(10), text(3000), text(100000), text(200)]
    ping = text(500)
    for m in msgs:
        # A push first: with context takeover it leaves history in the connection's stream.
        for c in conns:
            await c.send(ping)
            assert await asyncio.wait_for(c.recv(), 10) == ping
        await conns[0].send('bcast:' + m)
        got = await asyncio.gather(*[asyncio.wait_for(c.recv(), 10) for c in conns])
        assert all(g == m for g in got), [len(g) for g in got]
        # The raw clients: compressed (RSV1) above min_length for the one that agreed only.
        assert raw.message() == (1, int(len(m.encode()) >= 64), m.encode())
        assert plain.message() == (1, 0, m.encode())
        # The same push again: the stream must not reference what it thinks came before.
        for c in conns:
            await c.send(ping)
            assert await asyncio.wait_for(c.recv(), 10) == ping
    for c in conns:
        await c.close()
    raw.s.close()
    plain.s.close()
    print('bcast', len(conns) + 2)


async def case_off():
    async with websockets.connect(URL, compression='deflate') as ws:
        assert 'Sec-WebSocket-Extensions' not in ws.response_headers
        assert ws.extensions == []
        await ws.send(text(1000))
        assert len(await ws.recv()) == 1000
    r = Raw('permessage-deflate')
    assert 'Sec-WebSocket-Extensions' not in r.head
    r.send(0xc1, compress(b'x' * 100))
    assert r.expect_close() == 1002
    print('off done')


async def case_shared():
    # websocket_compression_context_takeover 0: no offer gets a server context.
    for f in (PMD(), PMD(client_no_context_takeover=True), PMD(server_max_window_bits=11)):
        ext = await echo_variant(f, [64, 1000, 65536], repr(f.get_request_params()))
        assert 'server_no_context_takeover' in ext, ext
    r = Raw('permessage-deflate; client_max_window_bits')
    assert 'Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n' in r.head
    # Each message stands alone: a fresh inflater per message reads every one.
    m = b'the same message again and again ' * 8
    for _ in range(3):
        r.send(0x82, m)
        r.inf = zlib.decompressobj(-15)
        assert r.message() == (2, 1, m)
    r.s.close()
    print('shared done')


if CASE == 'echo':
    asyncio.run(case_echo())
elif CASE == 'raw':
    case_raw()
elif CASE == 'bcast':
    asyncio.run(case_bcast())
elif CASE == 'off':
    asyncio.run(case_off())
elif CASE == 'shared':
    asyncio.run(case_shared())
else:
    raise SystemExit('unknown case ' + CASE)
print('ok', CASE)
