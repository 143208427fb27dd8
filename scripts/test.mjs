// `npm test`: builds the addon, starts a private SeaweedFS S3 server on
// 127.0.0.1, runs the Rust tests and the Node tests against it, stops it.
//
//   node scripts/test.mjs                      build (debug), cargo test, every Node test
//   node scripts/test.mjs __test__/x.test.mjs  build (debug), only the named Node tests
//   node scripts/test.mjs --prebuilt           no build, no cargo test: the Node tests run
//                                              on the .node already at the root (CI puts the
//                                              release binary of the build job there)

import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { ROOT, buildAddon, ensureNodeModules } from './setup.mjs'
import { ensureMoto, ensureWeed, startTestServer } from './s3-server.mjs'

const args = process.argv.slice(2)
const prebuilt = args.includes('--prebuilt')
const only = args.filter((a) => !a.startsWith('--'))

/** Every test file under __test__ (explicit paths: Node 22 no longer expands a directory). */
function testFiles(dir = path.join(ROOT, '__test__')) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const full = path.join(dir, e.name)
      if (e.isDirectory()) return e.name === 'node_modules' ? [] : testFiles(full)
      return /\.test\.[cm]?js$/.test(e.name) ? [path.relative(ROOT, full)] : []
    })
    .sort()
}

ensureNodeModules()
ensureWeed()
// The tests of stores that answer or ignore conditions otherwise start moto.
process.env.MOTO_BIN = ensureMoto()
if (prebuilt) {
  const binaries = readdirSync(ROOT).filter((f) => f.endsWith('.node'))
  console.log(`Using the prebuilt binaries at the root: ${binaries.join(', ') || '(none)'}`)
} else {
  buildAddon()
}

const server = await startTestServer()
console.log(`Testing against ${server.name}`)
let failed = false
const step = (name, cmd, cmdArgs) => {
  console.log(`\n=== ${name} ===`)
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit', cwd: ROOT, env: { ...process.env, ...server.env } })
  if (r.status !== 0) {
    console.error(`${name} failed (exit ${r.status ?? r.signal})`)
    failed = true
  }
}
try {
  if (!prebuilt && only.length === 0) step('Rust tests (cargo test)', 'cargo', ['test', '--workspace'])
  const files = only.length > 0 ? only : testFiles()
  step('Node tests (node --test)', process.execPath, ['--test', '--test-concurrency=4', ...files])
} finally {
  await server.stop()
}
process.exit(failed ? 1 : 0)
