'use strict';
// A real Dubbo 2 consumer for laneway's interop tests: npm dubbo2.js in direct mode (no
// ZooKeeper) calling 127.0.0.1:PORT. Makes a fixed list of calls, prints one JSON line per
// call ({"call", "ok", "value" | "error"}) and exits.
const net = require('net');
const path = require('path');
const nodeModules = path.join(__dirname, '..', 'node', 'node_modules');
const { DirectlyDubbo, java } = require(path.join(nodeModules, 'dubbo2.js'));
const HeartBeat = require(path.join(nodeModules, 'dubbo2.js', 'es7', 'heartbeat.js')).default;

const port = Number(process.argv[2]);

// dubbo2.js's own heartbeat frame on a connection of its own; the answer must be a
// heartbeat by dubbo2.js's own check (17 bytes: header + Hessian null).
function heartbeat() {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(HeartBeat.encode()));
    let reply = Buffer.alloc(0);
    socket.on('data', data => {
      reply = Buffer.concat([reply, data]);
      if (reply.length >= 17) {
        socket.end();
        resolve({
          call: 'heartbeat',
          ok: HeartBeat.isHeartBeat(reply),
          value: reply.toString('hex'),
        });
      }
    });
    socket.on('error', reject);
  });
}

async function main() {
  process.stdout.write(JSON.stringify(await heartbeat()) + '\n');
  const dubbo = DirectlyDubbo.from({
    dubboAddress: '127.0.0.1:' + port,
    dubboVersion: '2.0.2',
    dubboInvokeTimeout: 5,
  });
  const service = dubbo.proxyService({
    dubboInterface: 'com.laneway.interop.GreetingService',
    version: '1.0.0',
    group: 'blue',
    timeout: 3000,
    methods: {
      greet(name) {
        return [java.String(name)];
      },
      add(a, b) {
        return [java.int(a), java.int(b)];
      },
      withAttachments() {
        return [];
      },
      nothing() {
        return [];
      },
      fails(message) {
        return [java.String(message)];
      },
      missing() {
        return [];
      },
    },
  });
  const calls = [
    ['greet', () => service.greet('laneway')],
    ['add', () => service.add(2, 40)],
    ['withAttachments', () => service.withAttachments()],
    ['nothing', () => service.nothing()],
    ['fails', () => service.fails('boom')],
    ['missing', () => service.missing()],
  ];
  for (const [name, call] of calls) {
    // dubbo2.js's go() resolves to {res, err} instead of rejecting.
    const { res, err } = await call();
    const line = err
      ? { call: name, ok: false, error: String(err.message || err) }
      : { call: name, ok: true, value: res === undefined ? null : res };
    process.stdout.write(JSON.stringify(line) + '\n');
  }
  process.exit(0);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
