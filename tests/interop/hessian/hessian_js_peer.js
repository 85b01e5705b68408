'use strict';
// Hessian 2.0 peer for laneway's interop tests: npm hessian.js, one process per test session.
//
// stdin:  {"encode": [{"name", "value": <tagged>}], "decode": [{"name", "hex"}]}
// stdout: {"encoded": {name: hex | {"error"}}, "decoded": {name: <view> | {"error"}}}
//
// <tagged> values (built by the Python test): {"t": "null" | "bool" | "int" | "long" |
// "double" | "date" | "string" | "binary" | "list" | "map" | "object" | "ref", ...}; containers
// carry an "id" that a later {"t": "ref", "to": id} names (shared values and cycles).
// <view> is what hessian.js decoded, in the same shape; numbers are {"t": "number"} because
// hessian.js returns ints, longs and doubles alike as JS numbers (unsafe longs as strings).

const path = require('path');
const hessian = require(path.join(__dirname, '..', 'node', 'node_modules', 'hessian.js'));

const encoder = new hessian.EncoderV2({
  size: 1024 * 1024,
  mapTypes: {'java.util.LinkedHashMap': true, 'java.util.TreeMap': true},
});

function build(tagged, ids) {
  switch (tagged.t) {
    case 'null': return null;
    case 'bool': return tagged.v;
    case 'int': return tagged.v;
    case 'long': return {$class: 'long', $: tagged.v};  // decimal string: any 64-bit value
    case 'double': return {$class: 'double', $: Number(tagged.v)};
    case 'date': return new Date(tagged.v);
    case 'string': return tagged.v;
    case 'binary': return Buffer.from(tagged.v, 'hex');
    case 'ref': return ids.get(tagged.to);
    case 'list': {
      const items = [];
      const value = tagged.type ? {$class: tagged.type, $: items} : items;
      ids.set(tagged.id, value);
      for (const item of tagged.items) items.push(build(item, ids));
      return value;
    }
    case 'map': {
      const map = new Map();
      const value = tagged.type ? {$class: tagged.type, $: map} : map;
      ids.set(tagged.id, value);
      for (const [k, v] of tagged.entries) map.set(build(k, ids), build(v, ids));
      return value;
    }
    case 'object': {
      const fields = {};
      const value = {$class: tagged.type, $: fields};
      ids.set(tagged.id, value);
      for (const [name, v] of tagged.fields) fields[name] = build(v, ids);
      return value;
    }
    default: throw new Error('unknown tag ' + tagged.t);
  }
}

function num(v) {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

function view(value, seen) {
  if (value === null || value === undefined) return {t: 'null'};
  if (typeof value === 'boolean') return {t: 'bool', v: value};
  if (typeof value === 'number') return {t: 'number', v: num(value)};
  if (typeof value === 'string') return {t: 'string', v: value};
  if (value instanceof Date) return {t: 'date', v: value.getTime()};
  if (Buffer.isBuffer(value)) return {t: 'binary', v: value.toString('hex')};
  if (typeof value.$class === 'string' && '$' in value) {
    const inner = value.$;  // a scalar hessian.js kept its Java type for: {$class: 'boolean', $: true}
    if (inner === null || typeof inner !== 'object' || inner instanceof Date || Buffer.isBuffer(inner)) {
      return view(inner, seen);
    }
  }
  // Maps are known by their entries object: hessian.js returns a fresh {$class, $} wrapper
  // for an untyped map but the bare entries object for a reference to it.
  const inner = value.$;
  const isMap = (inner && inner.$map instanceof Map) || value.$map instanceof Map;
  const key = isMap && inner && inner.$map ? inner : value;
  if (seen.has(key)) return {t: 'ref', to: seen.get(key)};
  const id = seen.size;
  seen.set(key, id);
  if (Array.isArray(value)) {
    return {t: 'list', id, type: null, items: value.map((v) => view(v, seen))};
  }
  if (isMap) {
    const map = inner && inner.$map ? inner.$map : value.$map;
    const entries = [];
    for (const [k, v] of map) entries.push([view(k, seen), view(v, seen)]);
    const type = !inner || !inner.$map || value.$class === 'java.util.HashMap' ? null : value.$class;
    return {t: 'map', id, type, entries};
  }
  if (Array.isArray(inner)) {
    return {t: 'list', id, type: value.$class, items: inner.map((v) => view(v, seen))};
  }
  if (inner instanceof Error) {
    return {t: 'exception', id, type: value.$class, message: inner.message,
      cause_is_self: inner.cause === value};
  }
  const fields = Object.keys(inner).map((name) => [name, view(inner[name], seen)]);
  return {t: 'object', id, type: value.$class, fields};
}

function main(input) {
  const request = JSON.parse(input);
  const encoded = {};
  for (const {name, value} of request.encode || []) {
    try {
      encoder.reset();
      encoded[name] = encoder.write(build(value, new Map())).get().toString('hex');
    } catch (err) {
      encoded[name] = {error: String(err && err.stack || err)};
    }
  }
  const decoded = {};
  for (const {name, hex} of request.decode || []) {
    try {
      const buf = Buffer.from(hex, 'hex');
      const result = view(hessian.decode(buf, '2.0', true), new Map());
      if (result.t === 'exception') {
        // With types kept, hessian.js looks for the message in a typed wrapper and loses it;
        // the plain decode has it.
        result.message = hessian.decode(buf, '2.0').message;
      }
      decoded[name] = result;
    } catch (err) {
      decoded[name] = {error: String(err && err.stack || err)};
    }
  }
  process.stdout.write(JSON.stringify({encoded, decoded}));
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => main(Buffer.concat(chunks).toString('utf8')));
