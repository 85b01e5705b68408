'use strict';
// A real Dubbo 2 consumer (npm dubbo2.js, direct mode) calling through laneway.
// argv[2]: port; argv[3]: JSON list of calls
//   [{"interface", "version", "method", "args": [strings], "attachments": {k: v}}]
// Prints one JSON line per call ({"ok", "value" | "error"}) and exits.
const path = require('path');
const nodeModules = path.join(__dirname, '..', 'node', 'node_modules');
const { DirectlyDubbo, java } = require(path.join(nodeModules, 'dubbo2.js'));

const port = Number(process.argv[2]);
const calls = JSON.parse(process.argv[3]);

// Direct mode has no middleware; its request context does carry attachments
// (context.attachments, merged into the request by dubbo2.js's encoder). Set them for the
// call being queued.
let nextAttachments = {};
const addQueue = DirectlyDubbo.prototype.addQueue;
DirectlyDubbo.prototype.addQueue = function (ctx) {
  ctx.attachments = nextAttachments;
  return addQueue.call(this, ctx);
};

async function main() {
  const dubbo = DirectlyDubbo.from({
    dubboAddress: '127.0.0.1:' + port,
    dubboVersion: '2.0.2',
    dubboInvokeTimeout: 5,
  });
  for (const call of calls) {
    const service = dubbo.proxyService({
      dubboInterface: call.interface,
      version: call.version,
      timeout: 5000,
      methods: {
        [call.method](...args) {
          return args.map(a => java.String(a));
        },
      },
    });
    nextAttachments = call.attachments || {};
    const { res, err } = await service[call.method](...call.args);
    const line = err
      ? { ok: false, error: String(err.message || err) }
      : { ok: true, value: res === undefined ? null : res };
    process.stdout.write(JSON.stringify(line) + '\n');
  }
  process.exit(0);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
