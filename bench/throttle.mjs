// Throttling as S3 does it: a proxy in front of SeaweedFS lets GETs (pull)
// or PUTs (push) through at a fixed rate and answers the rest 503 SlowDown
// at once. Each tool moves the 2,116-file workload through it; the floor is
// the time the throttle needs to let the requests through (requests passed
// ÷ rate). Side by side in one run, medians of --runs.
//
//   node bench/throttle.mjs [--rate 400] [--runs 3] [--quick] [--build] [--ours-only] [--timeline]
//
// The package runs on the benchmark's release addon (bench/native.mjs: built
// when missing, or from the working tree with --build).
//
// Prints a table and writes it to bench/results/throttle.{md,json}; exits 1
// if a tool this package is measured against gave up on a file.

import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3'
import { startS3Server } from '../scripts/s3-server.mjs'
import { ensureNative } from './native.mjs'
import { generateWorkload, writeWorkload } from './workload.mjs'
import { startThrottleProxy, kindOf } from './proxy.mjs'
import { availablePeers, PeerSync } from './peers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '400' },
    runs: { type: 'string', default: '3' },
    quick: { type: 'boolean' },
    build: { type: 'boolean' },
    'ours-only': { type: 'boolean' },
    timeline: { type: 'boolean' },
  },
})
const rate = Number(args.rate)
const runs = Number(args.runs)

const native = ensureNative({ rebuild: args.build ? 'worktree' : false })
if (native.stale) console.warn(`warning: Rust sources changed since the release addon was built (${native.builtAt}); --build measures the working tree`)
process.env.NAPI_RS_NATIVE_LIBRARY_PATH = native.addon
const { S3WorkspaceSync } = await import('../index.js')
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const tmp = (name) => mkdtempSync(path.join(os.tmpdir(), `s3ws-throttle-${name}-`))
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const server = await startS3Server({ quiet: true })
Object.assign(process.env, server.env)
const admin = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true })
const files = generateWorkload({ quick: args.quick })
const source = tmp('source')
writeWorkload(source, files)

let buckets = 0
async function bucket() {
  const name = `throttle-${process.pid}-${buckets++}`
  await admin.send(new CreateBucketCommand({ Bucket: name }))
  return name
}
// The seeded bucket every pull reads.
const seeded = await bucket()
await new S3WorkspaceSync({ bucket: seeded, prefix: 'w/', workspaceDir: source, endpoint: server.endpoint, logger: quiet }).push()

const isGet = (method, url) => method === 'GET' && kindOf(method, url) === 'GET'
const isPut = (method) => method === 'PUT'

const tools = {
  'this package': (options) => new S3WorkspaceSync({ ...options, logger: quiet }),
  ...Object.fromEntries((args['ours-only'] ? [] : availablePeers().available).map((name) => [name, (options) => new PeerSync(name, options)])),
}

/** One timed pull or push of the workload by `make` through a fresh throttle. */
async function once(op, make) {
  const proxy = await startThrottleProxy(server.endpoint, { rate, throttled: op === 'pull' ? isGet : isPut })
  const dir = op === 'pull' ? tmp('pull') : source
  const options = { bucket: op === 'pull' ? seeded : await bucket(), prefix: 'w/', workspaceDir: dir, endpoint: proxy.endpoint }
  const sync = make(options)
  const started = performance.now()
  const result = op === 'pull' ? await sync.pull() : await sync.push()
  const ms = performance.now() - started
  const stats = proxy.stats()
  await proxy.close()
  if (args.timeline) console.log(`${op} timeline (passed/SlowDown per 100 ms): ${stats.timeline.map(([p, d]) => `${p}/${d}`).join(' ')}`)
  if (op === 'pull') rmSync(dir, { recursive: true, force: true })
  // The throttle's floor: the requests it let through, at its rate.
  const floorMs = (stats.passed / rate) * 1000
  const moved = op === 'pull' ? result.downloadedFiles : result.uploadedFiles
  return { ms, floorMs, passed: stats.passed, slowDown: stats.slowDown, success: result.success, moved, errors: result.errors?.length ?? 0 }
}

const rows = []
for (const op of ['pull', 'push']) {
  for (const [name, make] of Object.entries(tools)) {
    const samples = []
    for (let i = 0; i < runs; i++) samples.push(await once(op, make))
    const ms = median(samples.map((s) => s.ms))
    const floorMs = median(samples.map((s) => s.floorMs))
    rows.push({
      op,
      tool: name,
      ms,
      floorMs,
      ratio: ms / floorMs,
      slowDown: median(samples.map((s) => s.slowDown)),
      passed: median(samples.map((s) => s.passed)),
      allMoved: samples.every((s) => s.success),
      failedRuns: samples.filter((s) => !s.success).length,
      moved: samples.map((s) => s.moved ?? '–'),
    })
    console.log(
      `${op} ${name}: ${(ms / 1000).toFixed(2)} s, floor ${(floorMs / 1000).toFixed(2)} s, ×${(ms / floorMs).toFixed(2)}, ${rows.at(-1).slowDown} SlowDown, ${rows.at(-1).failedRuns}/${runs} runs failed`,
    )
  }
}
await server.stop()
rmSync(source, { recursive: true, force: true })

const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`
const table = [
  `Throttle: ${rate} GET/s (pull) or PUT/s (push), 503 SlowDown above it; ${files.length} files; medians of ${runs} runs; ${new Date().toISOString().slice(0, 10)}.`,
  '',
  '| operation | tool | time | throttle floor | ratio to floor | SlowDown answers | every file moved |',
  '|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.op} | ${r.tool} | ${fmt(r.ms)} | ${fmt(r.floorMs)} | **×${r.ratio.toFixed(2)}** | ${r.slowDown} | ${r.allMoved ? 'yes' : `no (${r.failedRuns}/${runs} runs failed)`} |`,
  ),
  '',
]
console.log(`\n${table.join('\n')}`)
if (!args.quick) {
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
  writeFileSync(path.join(ROOT, 'bench', 'results', 'throttle.md'), `# Throttling\n\n\`node bench/throttle.mjs\`\n\n${table.join('\n')}`)
  writeFileSync(path.join(ROOT, 'bench', 'results', 'throttle.json'), JSON.stringify({ rate, runs, rows }, null, 2))
}
process.exit(rows.filter((r) => r.tool === 'this package').every((r) => r.allMoved) ? 0 : 1)
