// bench/dotenvx_fill.cjs: append N encrypted keys to a dotenvx .env file,
// for bench/run.sh.
//
//   node dotenvx_fill.cjs PRIMITIVES_DIR ENV_FILE N
//
// ENV_FILE must already hold a DOTENV_PUBLIC_KEY (run.sh makes it with one
// `dotenvx set`, which also writes the private key to .env.keys). Each value
// is sealed with dotenvx's own encrypt() from @dotenvx/primitives (secp256k1
// ECIES), exactly what `dotenvx set` writes, but in one process: calling
// `dotenvx set` N times, or `dotenvx encrypt` on an N-key plaintext file,
// takes far too long at N = 10,000 (see bench/README.md). Values are random
// bench junk and are never printed.
'use strict'
const fs = require('node:fs')
const crypto = require('node:crypto')

const [primitivesDir, file, count] = process.argv.slice(2)
const n = Number(count)
if (!primitivesDir || !file || !Number.isInteger(n) || n < 0) {
  process.stderr.write('usage: node dotenvx_fill.cjs PRIMITIVES_DIR ENV_FILE N\n')
  process.exit(2)
}
const { encrypt } = require(primitivesDir)
const src = fs.readFileSync(file, 'utf8')
const m = /^DOTENV_PUBLIC_KEY="?([0-9a-f]+)"?\s*$/m.exec(src)
if (!m) {
  process.stderr.write(`dotenvx_fill: no DOTENV_PUBLIC_KEY in ${file}\n`)
  process.exit(3)
}
const lines = []
for (let i = 0; i < n; i++) {
  // Same names as bench/populate.c makes for latch, in .env spelling.
  const kinds = ['API_TOKEN', 'DB_PASSWORD', 'WEBHOOK_SECRET', 'PRIVATE_KEY', 'CLIENT_SECRET']
  const name = `SVC${String(i % 1000).padStart(3, '0')}_${kinds[i % 5]}_${String(i).padStart(5, '0')}`
  lines.push(`${name}="${encrypt(m[1], crypto.randomBytes(40).toString('hex'))}"`)
}
fs.appendFileSync(file, lines.join('\n') + (n ? '\n' : ''))
