/*
 * Build-time check (binding.gyp): the addon's AEAD links against the OpenSSL inside the node
 * binary. Load the freshly built addon (linked with -z now, so a node that does not export the
 * EVP symbols fails right here) and seal one packet against node:crypto. Fails the build with a
 * message that says what is missing instead of leaving an addon that breaks at run time.
 */
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const [addonPath, stamp] = process.argv.slice(2);

function fail(why) {
  process.stderr.write(
    `\novpn_io: the native AEAD cannot use this Node's OpenSSL: ${why}\n` +
      'It needs a Node.js built with OpenSSL 3 that exports the EVP_* symbols to addons (official\n' +
      'nodejs.org and distribution builds do). With another build, use a standard Node.js >= 20.\n\n',
  );
  process.exit(1);
}

if (!process.versions.openssl) fail('this node has no OpenSSL at all (process.versions.openssl is empty)');
let addon;
try {
  addon = require(path.resolve(addonPath));
} catch (e) {
  fail(`loading ${addonPath} failed: ${e.message}`);
}
const linked = addon.aeadOpenSSL();
if (!linked.includes(`OpenSSL ${process.versions.openssl.split('+')[0]}`)) {
  fail(`the addon runs on "${linked}" but node:crypto on OpenSSL ${process.versions.openssl}`);
}
const key = crypto.randomBytes(32);
const iv = crypto.randomBytes(12);
const buf = Buffer.alloc(8 + 16 + 100);
crypto.randomFillSync(buf);
const plain = Buffer.from(buf.subarray(24));
const handle = addon.aeadKeyNew('AES-256-GCM', key, key);
addon.aeadSeal(handle, [buf], new Int32Array([0, 0, 8, 24, 100, 8]), iv, 1);
addon.aeadKeyDelete(handle);
const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
cipher.setAAD(buf.subarray(0, 8));
const expected = Buffer.concat([cipher.update(plain), cipher.final()]);
if (!expected.equals(buf.subarray(24)) || !cipher.getAuthTag().equals(buf.subarray(8, 24))) {
  fail('a packet sealed by the addon differs from node:crypto');
}
fs.mkdirSync(path.dirname(stamp), { recursive: true });
fs.writeFileSync(stamp, `${linked}\n`);
