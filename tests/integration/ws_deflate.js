// node-ws (Debian node-ws) against swoop's permessage-deflate, for
// tests/integration/ws_deflate.c: clients with and without perMessageDeflate
// (and one with every parameter) echo text and binary of many sizes, then all
// receive the same broadcasts. Usage: node ws_deflate.js PORT. Prints "ok node".
'use strict';
const WebSocket = require('ws');
const assert = require('assert');

const url = 'ws://127.0.0.1:' + process.argv[2] + '/ws';

function open(pmd) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { perMessageDeflate: pmd, maxPayload: 0 });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
    });
}

function next(ws) {
    return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no message in 10 s')), 10000);
        ws.once('message', (data, isBinary) => {
            clearTimeout(t);
            resolve({ data, isBinary });
        });
    });
}

function text(n) {
    let s = '';
    const words = ['alpha ', 'beta ', 'gamma ', '\u00e9t\u00e9 ', '\u4e2d\u6587 '];
    for (let i = 0; s.length < n; i++)
        s += words[(i * 7) % words.length];
    return s.slice(0, n);
}

async function main() {
    const full = {
        threshold: 0,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 11,
    };
    const clients = [await open(true), await open(false), await open(full),
        await open({ threshold: 0 })];
    assert.deepStrictEqual(clients.map((c) => c.extensions), ['permessage-deflate', '',
        'permessage-deflate', 'permessage-deflate']);
    // What node-ws accepted from the 101 for the offer with every parameter.
    assert.deepStrictEqual({ ...clients[2]._extensions['permessage-deflate'].params }, {
        server_no_context_takeover: true, client_no_context_takeover: true,
        server_max_window_bits: 10, client_max_window_bits: 11,
    });
    for (const c of clients) {
        for (const n of [0, 10, 63, 64, 1000, 1024, 65536, 300000]) {
            const t = text(n);
            c.send(t);
            let m = await next(c);
            assert.strictEqual(m.isBinary, false);
            assert.strictEqual(m.data.toString(), t);
            const b = Buffer.alloc(n, n & 0xff);
            c.send(b);
            m = await next(c);
            assert.strictEqual(m.isBinary, true);
            assert.ok(m.data.equals(b), 'binary ' + n);
        }
    }
    for (const n of [20, 5000, 100000]) {
        const t = text(n);
        const got = Promise.all(clients.map(next));
        clients[1].send('bcast:' + t);
        for (const m of await got)
            assert.strictEqual(m.data.toString(), t);
        // Pushes after a shared frame still decode (context takeover).
        for (const c of clients) {
            c.send(t);
            assert.strictEqual((await next(c)).data.toString(), t);
        }
    }
    await Promise.all(clients.map((c) => new Promise((resolve) => {
        c.once('close', resolve);
        c.close(1000);
    })));
    console.log('ok node');
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
