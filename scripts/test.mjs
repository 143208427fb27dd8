// `npm test`: builds the addon, starts a private SeaweedFS S3 server on
// 127.0.0.1, runs the Rust tests and the Node tests against it, stops it.

import { spawnSync } from 'node:child_process'
import { ROOT, buildAddon, ensureNodeModules } from './setup.mjs'
import { ensureWeed, startS3Server } from './s3-server.mjs'

ensureNodeModules()
ensureWeed()
buildAddon()

const server = await startS3Server()
let failed = false
const step = (name, cmd, args) => {
  console.log(`\n=== ${name} ===`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, env: { ...process.env, ...server.env } })
  if (r.status !== 0) {
    console.error(`${name} failed (exit ${r.status ?? r.signal})`)
    failed = true
  }
}
try {
  step('Rust tests (cargo test)', 'cargo', ['test', '--workspace'])
  step('Node tests (node --test)', process.execPath, ['--test', '--test-concurrency=4', '__test__/'])
} finally {
  await server.stop()
}
process.exit(failed ? 1 : 0)
