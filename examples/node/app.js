// A small Node program that uses what a real service leans on: the crypto
// module (OpenSSL), Intl (ICU) and zlib. It prints one line; the plain and
// the multi-stage images must print the same one.
'use strict';
const crypto = require('crypto');
const zlib = require('zlib');

const name = process.argv[2] || 'stagefarm';
const digest = crypto.createHash('sha256').update(name).digest('hex').slice(0, 12);
const when = new Intl.DateTimeFormat('de-DE', { dateStyle: 'long', timeZone: 'UTC' })
  .format(new Date(Date.UTC(2024, 2, 1)));
const packed = zlib.gzipSync(Buffer.from(name.repeat(100))).length;
console.log(`Hello ${name} from Node ${process.versions.node.split('.')[0]}: ` +
  `sha256 ${digest}, ${when}, ${packed} gzip bytes`);
