// `npm run bench` — the benchmark of issue 4.
//
//   node bench/run.mjs [--reps N] [--quick] [--build] [--only a,b] [--no-count]
//                      [--tmp DIR] [--out FILE]
//
// Starts a private SeaweedFS (data on tmpfs), seeds a deterministic
// agent-like workspace (bench/workload.mjs), then for each scenario runs each
// implementation in a fresh child process, `--reps` times (default 3),
// rotating the order of the implementations every rep, and prints a markdown
// table of medians (also written to bench/results/latest.md, raw samples to
// bench/results/latest.json).
//
// Two more workloads, seeded only when a scenario needs them: `many/`, 50,000
// files of 1 KiB (cold-pull-many, warm-pull-many, noop-push-many: one timed
// rep each, as they are long; the warm pull and no-op push reuse the
// workspace the same implementation pulled cold), and `del/`, 3,200 files of
// 1 KiB of which delete-push deletes 3,000.
//
// Implementations: `ours` (the package, release addon from bench/.native),
// `reference` (bench/reference.mjs, the upstream algorithm in plain JS),
// `floor` (crates/engine/examples/floor_probe.rs: list + GET everything at
// 64 in flight into memory), `floor-disk` (the same, each body written to a
// temp file, MD5-checked and renamed into place: the like-for-like floor),
// `single-stream` (the floor probe streaming
// the one 512 MiB object to disk: one GET, no hashing) and `raw-multipart`
// (the floor probe uploading the 512 MiB file in parts, no hashing).
//
// Requests are counted in a separate, untimed pass through a counting proxy
// (bench/proxy.mjs), one run per scenario and implementation; that pass also
// warms the server up. Timed runs talk to the server directly.
//
// This file parses the arguments and runs the benchmark; the scenarios are
// defined in bench/scenarios.mjs, the report written by bench/report.mjs.

import { PEERS_LIST as PEERS, availablePeers } from './peers.mjs'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { crc32 } from 'node:zlib'
import path from 'node:path'
import { S3Client, CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { ROOT, ensureNodeModules } from '../scripts/setup.mjs'
import { startS3Server, ensureWeed } from '../scripts/s3-server.mjs'
import { ensureNative, ensureBaseline } from './native.mjs'
import { cpuMsOf, machineBusyMs } from './sysstat.mjs'
import { startCountingProxy, startLatencyProxy, formatCounts, MARK_PATH } from './proxy.mjs'
import { mapLimit } from './reference.mjs'
import { generateWorkload, generateMany, generateDeleteSet, writeWorkload, writeBigFile, editPlan, summary } from './workload.mjs'
import { PROBES, selectScenarios, reusedWorkspaces } from './scenarios.mjs'
import { fmtMs, fmtMiB, writeReport } from './report.mjs'
import { runLive } from './live.mjs'
import { runCheckpoints } from './checkpoints.mjs'

const MiB = 1024 * 1024

// ---- arguments ----------------------------------------------------------------

function parseArgs(argv) {
  const o = { reps: null, quick: false, build: false, only: null, count: true, tmp: null, out: null, help: false, quietWait: 180, baseline: null, latency: 0 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--reps') o.reps = Number(val())
    else if (a === '--quick') o.quick = true
    else if (a === '--build') o.build = 'worktree'
    else if (a === '--build-head') o.build = 'head'
    else if (a === '--only') o.only = val().split(',')
    else if (a === '--no-count') o.count = false
    else if (a === '--tmp') o.tmp = val()
    else if (a === '--quiet-wait') o.quietWait = Number(val())
    else if (a === '--out') o.out = val()
    else if (a === '--baseline') o.baseline = val()
    else if (a === '--latency') o.latency = Number(val())
    else if (a === '--help' || a === '-h') o.help = true
    else throw new Error(`unknown argument ${a} (see --help)`)
  }
  if (o.reps === null) o.reps = o.quick ? 2 : 3
  if (!Number.isInteger(o.reps) || o.reps < 1) throw new Error('--reps must be a positive integer')
  if (!Number.isFinite(o.latency) || o.latency < 0) throw new Error('--latency must be a number of ms')
  return o
}

const HELP = `npm run bench -- [options]
  --reps N      timed runs per scenario and implementation (default 3; --quick: 2)
  --quick       small workload (212 files, ~15 MB; 64 MiB big file) for smoke tests
  --build       rebuild the release addon and the floor probe from the working tree first
                (else they are built only when missing)
  --build-head  the same, from the last commit (git archive HEAD into a temp dir): for
                measuring while someone is mid-edit
  --only LIST   comma-separated scenarios: cold-pull,warm-pull,noop-push,edit-push,push-big,pull-big,
                pull-big-single,pull-big-crc,cold-pull-many,warm-pull-many,noop-push-many,delete-push,
                priority-ws,ensure-ws,first-ws,priority-many,ensure-many,first-many (instant start);
                live (on its own: propagation latency between two instances and a watcher's
                idle requests a minute, at 2,116 and 50,000 files; bench/live.mjs);
                checkpoints (on its own: restoring a checkpoint of the 2,116-file workspace
                against a cold pull of it, versioned bucket; bench/checkpoints.mjs)
                (the *-many ones: 50,000 files of 1 KiB, --quick 5,000; at most 1 timed rep each;
                delete-push: 3,000 of 3,200 files deleted)
  --no-count    skip the request-counting pass
  --quiet-wait S  before each timed run, wait while other processes keep the CPU busy,
                up to S seconds in all (default 180; 0: never wait)
  --tmp DIR     where the server data and workspaces go (default /dev/shm, else the OS temp dir)
  --out FILE    markdown output (default bench/results/latest.md; quick: bench/results/quick.md)
  --latency MS  timed runs (every implementation, probes and peers too) go through a proxy
                that delays each request and each answer by MS (real S3 answers in 10–50 ms)
  --baseline REV  also run the package as of git revision REV (its own release build) in
                every scenario, side by side: "ours vs baseline" ratios show a change's effect`

// ---- small helpers ------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Cores other processes keep busy, sampled over `ms` (our server is idle between runs). */
async function busyCores(ms = 500) {
  const b0 = machineBusyMs()
  const t0 = performance.now()
  await sleep(ms)
  return (machineBusyMs() - b0) / (performance.now() - t0)
}

/** Bytes under `dir` (`du`), for the server's data. */
function diskBytes(dir) {
  const out = spawnSync('du', ['-sb', dir], { encoding: 'utf8' })
  return Number(out.stdout.split('\t')[0]) || 0
}

/**
 * Compacts the server's volumes where a third or more is garbage: every
 * overwritten or deleted object leaves its bytes in its volume until then,
 * and SeaweedFS checks only every 15 minutes. Compacting a volume needs as
 * much free space as the whole volume, so it must happen early: in the
 * 512 MiB push scenario (20 runs, each object deleted after its run) the
 * one volume grew to 12.8 GB, 10.7 GB of it garbage, and with 11 GB left
 * on the tmpfs it could no longer be compacted, nor grown: every write
 * failed ("No writable volumes"), and the next scenario that wrote stalled.
 * Called after every run (untimed); says what it reclaimed.
 */
async function compact(server) {
  const before = diskBytes(server.dir)
  const answer = await fetch(`${server.master}/vol/vacuum?garbageThreshold=0.3`, { signal: AbortSignal.timeout(300_000) }).catch((e) => ({ ok: false, status: e.message }))
  const after = diskBytes(server.dir)
  if (!answer.ok) console.log(`  (compacting the server's volumes failed: ${answer.status})`)
  else if (after < before) console.log(`  (server data compacted: ${fmtMiB(before / 1024)} -> ${fmtMiB(after / 1024)})`)
}

/**
 * What the server was doing when a scenario could not finish: its log and
 * its volumes' state (writable or not, sizes), kept in a file outside the
 * run's temp directory (which cleanup removes). Returns the file.
 */
async function keepServerState(server, name) {
  const out = path.join(os.tmpdir(), `bench-server-${name}-${Date.now()}.log`)
  const ask = async (what) => {
    const answer = await fetch(`${server.master}${what}`, { signal: AbortSignal.timeout(10_000) }).catch((e) => e)
    return `${what}: ${answer.ok ? await answer.text() : (answer.status ?? answer.message)}`
  }
  const state = [await ask('/vol/status'), await ask('/dir/status'), `data: ${diskBytes(server.dir)} bytes`]
  copyFileSync(path.join(server.dir, 'weed.log'), out)
  writeFileSync(out, `\n==== state when ${name} stopped\n${state.join('\n')}\n`, { flag: 'a' })
  return out
}

const ownCpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** Children still running, killed on cleanup (Ctrl-C, errors). */
const running = new Set()

/** Runs a process, returns { stdout, stderr }; kills it after `timeoutMs`. */
function runProcess(cmd, args, { env, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(child)
    child.on('exit', () => running.delete(child))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${path.basename(cmd)} timed out after ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve({ stdout, stderr })
      else reject(new Error(`${path.basename(cmd)} exited with ${code ?? signal}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`))
    })
  })
}

/**
 * A machine-wide lock (in the OS temp dir). Fails when another benchmark is
 * running; a stale lock (its process gone) is taken over.
 */
function takeLock() {
  const file = path.join(os.tmpdir(), 's3ws-bench.lock')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' })
      return () => rmSync(file, { force: true })
    } catch (e) {
      if (e.code !== 'EEXIST') throw e
      const pid = Number(readFileSync(file, 'utf8'))
      let alive = false
      try {
        process.kill(pid, 0)
        alive = readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('run.mjs')
      } catch {
        alive = false
      }
      if (alive) throw new Error(`another benchmark is running (pid ${pid}, lock ${file}); two at once would skew each other`, { cause: e })
      rmSync(file, { force: true })
    }
  }
  throw new Error(`cannot take the lock ${file}`)
}

// ---- runs -------------------------------------------------------------------

/** Runs bench/child.mjs with `job` (`b`: the run's context, see main); returns its result. */
async function runChild(b, job, { timeoutMs = b.childTimeout } = {}) {
  // The baseline is another tree (its own JS) with its own addon.
  const childEnv = job.impl === 'baseline' ? { ...b.env, NAPI_RS_NATIVE_LIBRARY_PATH: b.baseline.addon } : b.env
  const full = job.impl === 'baseline' ? { bucket: b.bucket, baselineDir: b.baseline.dir, ...job } : { bucket: b.bucket, ...job }
  const { stdout } = await runProcess(process.execPath, [path.join(ROOT, 'bench', 'child.mjs'), JSON.stringify(full)], {
    env: childEnv,
    timeoutMs,
  })
  const line = stdout.split('\n').find((l) => l.startsWith('__RESULT__ '))
  if (!line) throw new Error(`no result from child: ${stdout.slice(-300)}`)
  return JSON.parse(line.slice('__RESULT__ '.length))
}

/**
 * Uploads the tree `dir` to `prefix` with this package's push (50,000
 * files in seconds, where one SDK PutObject each takes minutes; and the
 * objects are exactly as the package makes them). A first push: `dir`'s
 * sync state is dropped, so whatever the prefix lacks is uploaded and
 * the rest left alone. `expected`: how many files that must be (null:
 * any). Returns the time taken in ms.
 */
async function seedByPush(b, prefix, dir, expected = null) {
  const t = performance.now()
  rmSync(path.join(dir, '.s3ws'), { recursive: true, force: true })
  const r = await runChild(b, { impl: 'ours', op: 'push', prefix, workspaceDir: dir, endpoint: b.server.endpoint }, { timeoutMs: b.longTimeout })
  if (!r.result?.success || (expected !== null && r.result.uploadedFiles !== expected)) {
    throw new Error(`seeding ${prefix} failed: uploaded ${r.result?.uploadedFiles} of ${expected ?? 'all'} files: ${JSON.stringify(r.result?.errors)}`)
  }
  return performance.now() - t
}

/** One run of `impl` in `scenario`; returns a sample. */
async function runOnce(b, scenario, impl, { counting = false } = {}) {
  const { server, proxy, native, env, kept } = b
  const endpoint = counting ? proxy.endpoint : (b.slow?.endpoint ?? server.endpoint)
  const timeoutMs = scenario.timeoutMs ?? b.childTimeout
  // Kept only for implementations a selected scenario will reuse it for.
  const key = scenario.workspace && b.keepFor.has(`${scenario.workspace.key}:${impl}`) ? `${scenario.workspace.key}:${impl}` : null
  const reused = key && scenario.workspace.reuse ? kept.get(key) : undefined
  const dir = reused ?? b.newDir()
  let ok = false
  const ctx = {
    dir,
    endpoint,
    // An untimed pull into the run's workspace, by `impl`, in its own process.
    pullFirst: async (prefix) => {
      const r = await runChild(b, { impl, op: 'pull', prefix, workspaceDir: dir, endpoint: server.endpoint }, { timeoutMs })
      if (!r.result.success) throw new Error(`preparatory pull failed: ${r.result.errors?.[0]}`)
    },
  }
  try {
    // A scenario reusing a workspace nobody kept (e.g. --only warm-pull-many) makes one.
    if (key && scenario.workspace.reuse && !reused) await ctx.pullFirst(scenario.prefix(ctx))
    await scenario.prepare?.(ctx, impl)
    const serverCpu0 = cpuMsOf(server.pid)
    const busy0 = machineBusyMs()
    const own0 = ownCpuMs()
    const wall0 = performance.now()
    let sample
    if (PROBES.includes(impl)) {
      const args = ['--endpoint', endpoint, '--bucket', b.bucket, '--prefix', scenario.prefix(ctx)]
      if (impl === 'single-stream') {
        mkdirSync(dir, { recursive: true })
        args.push('--to-dir', dir, '--concurrency', '1')
      }
      if (impl === 'raw-multipart') args.push('--upload', path.join(dir, 'big.bin'))
      if (impl === 'floor-disk') {
        mkdirSync(dir, { recursive: true })
        args.push('--verify-to', dir)
      }
      const { stdout } = await runProcess(native.floorProbe, args, { env, timeoutMs })
      const r = JSON.parse(stdout.trim().split('\n').pop())
      sample = { ms: r.ms, maxRssKB: r.maxRssKB, cpuMs: r.cpuMs, processCpuMs: r.cpuMs, fetched: { files: r.objects, bytes: r.bytes } }
    } else {
      sample = await runChild(
        b,
        {
          impl,
          op: scenario.op,
          prefix: scenario.prefix(ctx),
          workspaceDir: dir,
          endpoint,
          setupPull: Boolean(scenario.setupPull),
          edits: scenario.edits ?? null,
          options: scenario.options ?? null,
          target: scenario.target ?? null,
          markUrl: counting ? proxy.endpoint + MARK_PATH : null,
          serverPid: server.pid,
        },
        { timeoutMs },
      )
    }
    sample.wallMs = performance.now() - wall0
    const serverRunCpu = cpuMsOf(server.pid) - serverCpu0
    sample.serverCpuMs ??= serverRunCpu
    // CPU that neither this run (child, server) nor the orchestrator used:
    // other work on the machine, which skews the numbers.
    sample.otherCpuMs = Math.max(0, machineBusyMs() - busy0 - sample.processCpuMs - serverRunCpu - (ownCpuMs() - own0))
    // Peers report no counts: a push is checked by its exit status, a pull by the tree.
    const peerPush = PEERS.includes(impl) && scenario.op === 'push'
    sample.problem = peerPush ? (sample.result.success ? null : `failed: ${sample.result.errors?.[0]}`) : (scenario.check?.(sample, impl) ?? null)
    ok = !sample.problem
    return sample
  } catch (e) {
    return { error: e.message }
  } finally {
    if (key && ok) {
      // The newest good workspace replaces the one kept before.
      const old = kept.get(key)
      if (old && old !== dir) rmSync(old, { recursive: true, force: true })
      kept.set(key, dir)
    } else {
      // A failed run may have left it half synced: the next run starts afresh.
      rmSync(dir, { recursive: true, force: true })
      if (key && kept.get(key) === dir) kept.delete(key)
    }
    await scenario.after?.(ctx, impl)
  }
}

// ---- main ---------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.help) {
    console.log(HELP)
    return
  }
  const started = Date.now()
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
  // Two benchmarks at once on one machine skew each other (and would share
  // bench/.native): one at a time.
  const releaseLock = takeLock()
  process.on('exit', releaseLock)
  ensureNodeModules()
  ensureWeed()
  const built = ensureNative({ rebuild: opts.build })
  const baseline = opts.baseline ? ensureBaseline(opts.baseline) : null
  const peers = availablePeers()
  if (built.stale) {
    console.warn(`warning: Rust sources changed since the release addon was built (${built.builtAt}, from ${built.source}); --build measures the working tree`)
  }

  const tmpBase = opts.tmp ?? (existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir())
  const base = mkdtempSync(path.join(tmpBase, 's3ws-bench-'))
  // This run's own copies of the binaries: a rebuild meanwhile cannot swap them.
  mkdirSync(path.join(base, 'native'))
  const native = { ...built, addon: path.join(base, 'native', path.basename(built.addon)), floorProbe: path.join(base, 'native', 'floor_probe') }
  copyFileSync(built.addon, native.addon)
  copyFileSync(built.floorProbe, native.floorProbe)
  chmodSync(native.floorProbe, 0o755)
  let server = null
  let proxy = null
  let slow = null
  let admin = null
  const cleanup = async () => {
    for (const child of running) child.kill('SIGKILL')
    await proxy?.close().catch(() => {})
    await slow?.close().catch(() => {})
    admin?.destroy()
    await server?.stop().catch(() => {})
    rmSync(base, { recursive: true, force: true })
  }
  let interrupted = false
  const onSignal = (sig) => {
    if (interrupted) return
    interrupted = true
    console.error(`\n${sig}: stopping the server and removing ${base}`)
    cleanup().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    // One bucket: SeaweedFS's default volume size (30 GB). The test suites'
    // small volumes would make 512 MiB uploads stall on volume growth.
    server = await startS3Server({ quiet: true, baseDir: tmpBase, volumeSizeLimitMB: 30000 })
    console.log(`SeaweedFS at ${server.endpoint}, data and workspaces under ${tmpBase}`)
    const env = { ...process.env, ...server.env, NAPI_RS_NATIVE_LIBRARY_PATH: native.addon }
    delete env.AWS_ENDPOINT_URL
    delete env.AWS_ENDPOINT_URL_S3
    delete env.AWS_PROFILE
    admin = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: server.env.AWS_ACCESS_KEY_ID, secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    })
    const bucket = 'bench'
    await admin.send(new CreateBucketCommand({ Bucket: bucket }))
    // Scenarios that run on their own: live workspaces (one watcher, edits,
    // an idle minute or more) and checkpoints (a versioned bucket of its
    // own, a restore against a cold pull).
    const alone = { live: runLive, checkpoints: runCheckpoints }
    const single = Object.keys(alone).find((name) => opts.only?.includes(name))
    if (single) {
      if (opts.only.length > 1) throw new Error(`--only ${single} runs on its own`)
      const md = await alone[single]({ opts, server, addon: native.addon, tmp: base, bucket, admin })
      const out = opts.out ?? path.join(ROOT, 'bench', 'results', `${single}.md`)
      writeFileSync(out, `${md}\nMeasured with the release addon from ${native.source}${native.stale ? ' (stale: sources changed since)' : ''}.\n`)
      console.log(`Written to ${path.relative(ROOT, out)}`)
      return
    }

    // Workload: written once to a template directory, uploaded twice (ws/ for
    // pulls and the no-op push, edit/ for the edit push, restored after each run).
    const files = generateWorkload({ quick: opts.quick })
    const ws = summary(files)
    const bigSize = opts.quick ? 64 * MiB : 512 * MiB
    const tpl = path.join(base, 'tpl')
    const tplWs = path.join(tpl, 'ws')
    const tplBig = path.join(tpl, 'big', 'big.bin')
    console.log(`Workload: ${ws.files} files, ${(ws.bytes / 1e6).toFixed(1)} MB, ${ws.dirs} directories; big file ${bigSize / MiB} MiB`)
    // The many-files and deletion workloads, seeded only for their scenarios.
    const wants = (...names) => names.some((n) => !opts.only || opts.only.includes(n))
    const manyFiles = generateMany({ quick: opts.quick })
    const many = summary(manyFiles)
    const del = generateDeleteSet()
    const tplMany = path.join(tpl, 'many')
    const tplDel = path.join(tpl, 'del')
    for (const why of peers.missing) console.log(`Peer skipped: ${why}`)
    writeWorkload(tplWs, files)
    writeBigFile(tplBig, bigSize)
    const seed = async (prefix) =>
      mapLimit(files, 32, (f) => admin.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + f.path, Body: readFileSync(path.join(tplWs, f.path)) })))
    const t0 = Date.now()
    await seed('ws/')
    await seed('edit/')
    // The big object three times: as other tools send it, in one PUT, here
    // (with no checksum: its ETag the whole MD5 and nothing else; with the
    // CRC32 the AWS SDKs and CLI send by default since 2025), and as this
    // package pushes it (8 MiB parts) below.
    const bigPut = (Key, extra) => admin.send(new PutObjectCommand({ Bucket: bucket, Key, Body: createReadStream(tplBig), ContentLength: bigSize, ...extra }))
    await bigPut('bigone/big.bin', {})
    await bigPut('bigcrc/big.bin', { ChecksumCRC32: await fileCrc32(tplBig) })
    console.log(`Seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    const edits = editPlan(files)

    proxy = opts.count ? await startCountingProxy(server.endpoint) : null
    slow = opts.latency ? await startLatencyProxy(server.endpoint, opts.latency) : null
    let runId = 0
    /** This run's context, for runChild, seedByPush and runOnce. */
    const b = {
      env,
      native,
      baseline,
      server,
      proxy,
      slow,
      bucket,
      childTimeout: opts.quick ? 120_000 : 300_000,
      // 50,000 files: ~45 s for the reference, minutes for awscli.
      longTimeout: 15 * 60_000,
      newDir: () => path.join(base, 'runs', `r${runId++}`),
      /**
       * Pulled workspaces kept across runs, by `<workspace key>:<impl>` (see
       * `workspace` in the scenarios): pulling 50,000 files again before every
       * run would take longer than the runs. They live under `base`, removed
       * at the end with the rest.
       */
      kept: new Map(),
      /** The kept workspaces a selected scenario will reuse (set once the scenarios are). */
      keepFor: new Set(),
    }
    const seedByPushHere = (prefix, dir, expected) => seedByPush(b, prefix, dir, expected)
    const logSeeded = (prefix, n, ms) => console.log(`Seeded ${prefix} (${n.toLocaleString('en')} files of 1 KiB, by our push) in ${fmtMs(ms)}`)

    await seedByPushHere('big/', path.dirname(tplBig), 1)
    if (wants('cold-pull-many', 'warm-pull-many', 'noop-push-many')) {
      writeWorkload(tplMany, manyFiles)
      logSeeded('many/', many.files, await seedByPushHere('many/', tplMany, many.files))
    }
    if (wants('delete-push')) {
      writeWorkload(tplDel, del.files)
      logSeeded('del/', del.files.length, await seedByPushHere('del/', tplDel, del.files.length))
    }

    // Instant start: each workload again with 10 skills under .agents/skills/.
    const skills = Array.from({ length: 10 }, (_, i) => ({ path: `.agents/skills/skill${i}.md`, size: 2048 }))
    const instant = []
    for (const [key, label, workload, long] of [
      ['ws', `${ws.files.toLocaleString('en')} files`, files, false],
      ['many', `${many.files.toLocaleString('en')} files`, manyFiles, true],
    ]) {
      if (!['priority', 'ensure', 'first'].some((op) => wants(`${op}-${key}`))) continue
      const all = [...workload, ...skills]
      const dir = path.join(tpl, `instant-${key}`)
      const prefix = `instant-${key}/`
      writeWorkload(dir, all)
      const ms = await seedByPushHere(prefix, dir, all.length)
      console.log(`Seeded ${prefix} (${all.length.toLocaleString('en')} files, by our push) in ${fmtMs(ms)}`)
      const last = all
        .map((f) => f.path)
        .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
        .at(-1)
      instant.push({ key, prefix, tree: summary(all), last, label, long })
    }

    const scenarios = selectScenarios(
      { opts, baseline, peers },
      { files, ws, many, del, edits, bigSize, tplBig, tplDel, admin, bucket, seedByPush: seedByPushHere, longTimeout: b.longTimeout, instant },
    )
    b.keepFor = reusedWorkspaces(scenarios)

    // A shared machine: let a build or test run elsewhere finish first.
    let waitedMs = 0
    let warned = false
    const waitQuiet = async () => {
      while (waitedMs < opts.quietWait * 1000) {
        const cores = await busyCores()
        if (cores < 0.3) return
        if (!warned) console.log(`  (other processes busy: ${cores.toFixed(1)} cores; waiting, at most ${opts.quietWait} s in all)`)
        warned = true
        const t = performance.now()
        await sleep(1000)
        waitedMs += performance.now() - t + 500
      }
    }

    const results = []
    /** Scenarios that could not finish, with why: the rest still run and are reported. */
    const stopped = []
    for (const sc of scenarios) {
      console.log(`\n== ${sc.title}`)
      try {
        results.push(await runScenario(sc))
      } catch (e) {
        console.log(`  STOPPED: ${e?.message ?? e}`)
        const kept = await keepServerState(server, sc.name).catch((err) => `not kept: ${err.message}`)
        console.log(`  (the server's log and volume state: ${kept})`)
        stopped.push({ name: sc.name, why: String(e?.message ?? e) })
      }
    }

    writeReport({ opts, results, stopped, native, baseline, ws, many, del, bigSize, tmpBase, elapsedMs: Date.now() - started, waitedMs, peers })

    /** One scenario's counting runs and timed reps. */
    async function runScenario(sc) {
      const reps = Math.min(opts.reps, sc.reps ?? opts.reps)
      const entry = { name: sc.name, title: sc.title, reps, impls: {} }
      for (const impl of sc.impls) entry.impls[impl] = { samples: [], counts: null, countRun: null }
      if (proxy) {
        for (const impl of sc.impls) {
          proxy.reset()
          const s = await runOnce(b, sc, impl, { counting: true })
          // Setup pulls go through the proxy too; the child resets the
          // counts (MARK_PATH) right before its measured step.
          entry.impls[impl].counts = s.error ? null : proxy.snapshot()
          await compact(server)
          entry.impls[impl].countRun = s
          console.log(`  count  ${impl.padEnd(13)} ${s.error ? `FAILED: ${s.error}` : formatCounts(entry.impls[impl].counts)}`)
        }
      }
      for (let rep = 0; rep < reps; rep++) {
        const k = rep % sc.impls.length
        const order = [...sc.impls.slice(k), ...sc.impls.slice(0, k)]
        for (const impl of order) {
          await waitQuiet()
          const s = await runOnce(b, sc, impl)
          await compact(server)
          entry.impls[impl].samples.push(s)
          const note = s.error ? `FAILED: ${s.error}` : `${fmtMs(s.ms)}  rss ${fmtMiB(s.maxRssKB)}${s.problem ? `  CHECK: ${s.problem}` : ''}`
          console.log(`  rep ${rep + 1}  ${impl.padEnd(13)} ${note}`)
        }
      }
      return entry
    }
  } finally {
    await cleanup()
  }
}

main().catch((e) => {
  console.error(e?.stack ?? e)
  process.exit(1)
})

/** The CRC32 of a file, as S3's `x-amz-checksum-crc32` spells it. */
async function fileCrc32(file) {
  let crc = 0
  for await (const chunk of createReadStream(file)) crc = crc32(chunk, crc)
  const out = Buffer.alloc(4)
  out.writeUInt32BE(crc)
  return out.toString('base64')
}
