// `npm test`: builds the addon, starts a private SeaweedFS S3 server on
// 127.0.0.1, runs the Rust tests and the Node tests against it, stops it.
//
//   node scripts/test.mjs                      build (debug), cargo test, every Node test
//   node scripts/test.mjs __test__/x.test.mjs  build (debug), only the named Node tests
//   node scripts/test.mjs --prebuilt           no build, no cargo test: the Node tests run
//                                              on the .node already at the root (CI puts the
//                                              release binary of the build job there)
//   node scripts/test.mjs __test__/x.test.mjs -- --test-name-pattern "some name"
//                                              everything after a literal `--` goes to
//                                              `node --test` (then no cargo test either)
//
// Through npm, `npm test -- --prebuilt` and
// `npm test -- __test__/x.test.mjs -- --test-only` (npm drops only the first `--`).
//
// The release binary is built too (`npm run build:release`, into .release/;
// quick once cached) for __test__/release.test.mjs, which checks it; with
// --prebuilt, that is the one in .release/ if one was built here, else the
// binary at the root.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { ROOT, buildAddon, ensureNodeModules } from './setup.mjs'
import { buildRelease } from './build-release.mjs'
import { ensureMoto, ensureWeed, startTestServer } from './s3-server.mjs'

const argv = process.argv.slice(2)
const split = argv.indexOf('--')
const args = split === -1 ? argv : argv.slice(0, split)
/** Flags for `node --test` itself (`--test-name-pattern`, `--test-reporter`, ...). */
const nodeTestArgs = split === -1 ? [] : argv.slice(split + 1)
const prebuilt = args.includes('--prebuilt')
const only = args.filter((a) => !a.startsWith('--'))
const unknown = args.filter((a) => a.startsWith('--') && a !== '--prebuilt')
if (unknown.length > 0) {
  console.error(`scripts/test.mjs: unknown option ${unknown.join(', ')} (options for node --test go after a literal --)`)
  process.exit(2)
}

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
const files = only.length > 0 ? only : testFiles()
if (prebuilt) {
  const binaries = readdirSync(ROOT).filter((f) => f.endsWith('.node'))
  console.log(`Using the prebuilt binaries at the root: ${binaries.join(', ') || '(none)'}`)
  const release = path.join(ROOT, '.release')
  const built = existsSync(release) ? readdirSync(release).filter((f) => f.endsWith('.node')) : []
  if (built.length === 1) process.env.S3WS_RELEASE_BINARY = path.join(release, built[0])
  else if (binaries.length === 1) process.env.S3WS_RELEASE_BINARY = path.join(ROOT, binaries[0])
} else {
  buildAddon()
  if (files.some((f) => path.basename(f) === 'release.test.mjs')) {
    process.env.S3WS_RELEASE_BINARY = buildRelease({ outputDir: path.join(ROOT, '.release') })
  }
}

const server = await startTestServer()
console.log(`Testing against ${server.name}`)
let failed = false
// Asynchronous: s3rver serves from this very process.
const step = async (name, cmd, cmdArgs) => {
  console.log(`\n=== ${name} ===`)
  const child = spawn(cmd, cmdArgs, { stdio: 'inherit', cwd: ROOT, env: { ...process.env, ...server.env } })
  const [status, signal] = await once(child, 'exit')
  if (status !== 0) {
    console.error(`${name} failed (exit ${status ?? signal})`)
    failed = true
  }
}
try {
  if (!prebuilt && only.length === 0 && nodeTestArgs.length === 0) await step('Rust tests (cargo test)', 'cargo', ['test', '--workspace'])
  // node's options go before the files. A test that fails with a handle
  // still open (a watcher, a server) must fail the run, not hang it: the
  // file exits once its tests are done, and no single test runs past 5 min.
  const guards = ['--test-force-exit', '--test-timeout=300000']
  await step('Node tests (node --test)', process.execPath, ['--test', '--test-concurrency=4', ...guards, ...nodeTestArgs, ...files])
} finally {
  await server.stop()
}
process.exit(failed ? 1 : 0)
