// One measured run, in a fresh process: `node bench/child.mjs '<job json>'`.
// Builds a fresh instance of the implementation, does the untimed setup
// (a pull to get a snapshot, edits), then times one operation and prints
// `__RESULT__ {json}`: time, peak RSS of this process, event-loop delay during
// the operation, the operation's result, and what the workspace holds after.

import { createRequire } from 'node:module'
import { lstatSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { applyEdits } from './workload.mjs'
import { cpuMsOf } from './sysstat.mjs'

const job = JSON.parse(process.argv[2])
/** Resolves when the engine logs that it downloaded `rel` (any file: `null`). */
let downloaded = () => {}
const silent = {
  debug(/** @type {string} */ m) {
    if (typeof m === 'string' && m.startsWith('Downloaded ')) downloaded(m.slice('Downloaded '.length))
  },
  info() {},
  warn() {},
  error() {},
}
/** A promise for the first download of `rel` (`null`: of any file). */
const landed = (rel) =>
  new Promise((resolve) => {
    downloaded = (got) => (rel === null || got === rel) && resolve(performance.now())
  })

/**
 * The instant-start operations (see bench/scenarios.mjs): the time to what
 * the agent waits for, then the whole pull (its result for the checks).
 */
async function instant(sync, t0) {
  if (job.op === 'first') {
    const first = landed(null)
    const result = await sync.pull()
    return { at: (await first) - t0, result }
  }
  // Without ensure() the file is there when the pull brings it.
  const brought = typeof sync.ensure === 'function' ? null : landed(job.target)
  const handle = sync.startBackgroundPull()
  let at
  if (job.op === 'priority') {
    await handle.priorityDone
    at = performance.now() - t0
  } else if (brought) {
    at = (await brought) - t0
  } else {
    await sync.ensure(job.target)
    at = performance.now() - t0
  }
  return { at, result: await handle.done }
}

async function makeInstance() {
  const options = { bucket: job.bucket, prefix: job.prefix, workspaceDir: job.workspaceDir, endpoint: job.endpoint }
  if (job.impl === 'ours' || job.impl === 'baseline') {
    const require = createRequire(import.meta.url)
    const { S3WorkspaceSync } = require(job.impl === 'baseline' ? job.baselineDir : '..')
    // binding.js falls back to the .node at the repo root (often a debug
    // build) when the override does not load: refuse to measure that.
    const want = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
    const loaded = Object.keys(require.cache).filter((k) => k.endsWith('.node'))
    if (want && (loaded.length !== 1 || loaded[0] !== want)) {
      throw new Error(`expected the addon ${want}, loaded ${loaded.join(', ') || 'none'}`)
    }
    // 64 requests in flight, as the floor probe and the peers are given;
    // `job.options`: a scenario's own (e.g. the mass-deletion guard off).
    return new S3WorkspaceSync({ ...options, downloadConcurrency: 64, uploadConcurrency: 64, logger: silent, ...job.options })
  }
  if (job.impl === 'reference') {
    const { ReferenceSync } = await import('./reference.mjs')
    return new ReferenceSync(options)
  }
  if (job.impl === 'rclone' || job.impl === 'awscli') {
    const { PeerSync } = await import('./peers.mjs')
    return new PeerSync(job.impl, options)
  }
  throw new Error(`unknown impl ${job.impl}`)
}

/**
 * Regular files under `dir` and their bytes. The engine's own metadata
 * (names starting `.s3ws`: its state directory, lock, temp files) is counted
 * apart, as `meta`.
 */
function tree(dir) {
  const out = { files: 0, bytes: 0, metaFiles: 0, metaBytes: 0 }
  const walk = (d, meta = false) => {
    let names
    try {
      names = readdirSync(d)
    } catch {
      return
    }
    for (const name of names) {
      const full = path.join(d, name)
      const st = lstatSync(full)
      const isMeta = meta || name.startsWith('.s3ws')
      if (st.isDirectory()) walk(full, isMeta)
      else if (st.isFile() && isMeta) {
        out.metaFiles++
        out.metaBytes += st.size
      } else if (st.isFile()) {
        out.files++
        out.bytes += st.size
      }
    }
  }
  walk(dir)
  return out
}

/**
 * This process's peak RSS (VmHWM). Not `process.resourceUsage().maxRSS`:
 * Linux carries the high-water mark of the image an exec replaced into it,
 * so it never read below what the bench process held when it spawned this
 * one (the same 141 MiB for every implementation of a run).
 */
function peakRssKB() {
  const status = readFileSync('/proc/self/status', 'utf8')
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status)
  return m ? Number(m[1]) : process.resourceUsage().maxRSS
}

async function main() {
  const sync = await makeInstance()
  if (job.setupPull) {
    const r = await sync.pull()
    if (!r.success) throw new Error(`setup pull failed: ${JSON.stringify(r.errors?.slice(0, 3))}`)
  }
  if (job.edits) applyEdits(job.workspaceDir, job.edits)
  // Counting pass: tell the proxy the measured step starts now.
  if (job.markUrl) await (await fetch(job.markUrl)).text()
  const rssBeforeKB = Math.round(process.memoryUsage.rss() / 1024)
  const server0 = cpuMsOf(job.serverPid)
  const cpu0 = process.cpuUsage()

  const lag = monitorEventLoopDelay({ resolution: 1 })
  lag.enable()
  const t0 = performance.now()
  let result
  let ms
  if (job.op === 'pull' || job.op === 'push') {
    result = job.op === 'pull' ? await sync.pull() : await sync.push()
    ms = performance.now() - t0
  } else {
    const done = await instant(sync, t0)
    result = done.result
    ms = done.at
  }
  const wholeMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const serverCpuMs = cpuMsOf(job.serverPid) - server0
  lag.disable()
  const maxRssKB = peakRssKB()

  // A peer's own process: its peak RSS and CPU, not this wrapper's.
  const peer = sync.last
  const out = {
    ms,
    wholeMs,
    maxRssKB: peer ? peer.maxRssKB : maxRssKB,
    rssBeforeKB,
    cpuMs: peer ? peer.cpuMs : (cpu.user + cpu.system) / 1000,
    serverCpuMs,
    lagMaxMs: lag.max / 1e6,
    lagP99Ms: lag.percentile(99) / 1e6,
    result: { ...result, errors: result.errors?.slice(0, 5) },
    after: tree(job.workspaceDir),
  }
  sync.destroy?.()
  const total = process.cpuUsage()
  // A peer's CPU is its own process's (GNU time), not load from elsewhere.
  out.processCpuMs = (total.user + total.system) / 1000 + (peer ? peer.cpuMs : 0)
  process.stdout.write(`__RESULT__ ${JSON.stringify(out)}\n`)
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`child failed: ${e?.stack ?? e}\n`)
    process.exit(1)
  },
)
