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
// 64 in flight into memory), `single-stream` (the floor probe streaming
// the one 512 MiB object to disk: one GET, no hashing) and `raw-multipart`
// (the floor probe uploading the 512 MiB file in parts, no hashing).
//
// Requests are counted in a separate, untimed pass through a counting proxy
// (bench/proxy.mjs), one run per scenario and implementation; that pass also
// warms the server up. Timed runs talk to the server directly.

import { PEERS_LIST as PEERS, availablePeers } from './peers.mjs'
import { spawn, execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  DeleteObjectCommand,
} from '@aws-sdk/client-s3'
import { ROOT, ensureNodeModules } from '../scripts/setup.mjs'
import { startS3Server, ensureWeed } from '../scripts/s3-server.mjs'
import { ensureNative, ensureBaseline } from './native.mjs'
import { cpuMsOf, machineBusyMs } from './sysstat.mjs'

/** Implementations run by the floor probe rather than a Node child. */
const PROBES = ['floor', 'single-stream', 'raw-multipart']
import { startCountingProxy, startLatencyProxy, formatCounts, MARK_PATH } from './proxy.mjs'
import { mapLimit } from './reference.mjs'
import { generateWorkload, generateMany, generateDeleteSet, writeWorkload, writeBigFile, fileContent, editPlan, summary } from './workload.mjs'

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
                pull-big-single,cold-pull-many,warm-pull-many,noop-push-many,delete-push
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

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtMs = (ms) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`)
const fmtMiB = (kb) => `${Math.round(kb / 1024)} MiB`
const fmtX = (x) => (x >= 100 ? `${Math.round(x)}×` : x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Cores other processes keep busy, sampled over `ms` (our server is idle between runs). */
async function busyCores(ms = 500) {
  const b0 = machineBusyMs()
  const t0 = performance.now()
  await sleep(ms)
  return (machineBusyMs() - b0) / (performance.now() - t0)
}

const ownCpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()
  } catch {
    return ''
  }
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
      if (alive) throw new Error(`another benchmark is running (pid ${pid}, lock ${file}); two at once would skew each other`)
      rmSync(file, { force: true })
    }
  }
  throw new Error(`cannot take the lock ${file}`)
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
      mapLimit(files, 32, (f) =>
        admin.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + f.path, Body: readFileSync(path.join(tplWs, f.path)) })),
      )
    const t0 = Date.now()
    await seed('ws/')
    await seed('edit/')
    // The big object twice: as another tool sends it (one PUT, its ETag the
    // whole MD5) here, and as this package pushes it (8 MiB parts) below.
    await admin.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'bigone/big.bin', Body: createReadStream(tplBig), ContentLength: bigSize }),
    )
    console.log(`Seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    const edits = editPlan(files)

    proxy = opts.count ? await startCountingProxy(server.endpoint) : null
    slow = opts.latency ? await startLatencyProxy(server.endpoint, opts.latency) : null
    let runId = 0
    const newDir = () => path.join(base, 'runs', `r${runId++}`)
    const childTimeout = opts.quick ? 120_000 : 300_000
    // 50,000 files: ~45 s for the reference, minutes for awscli.
    const longTimeout = 15 * 60_000

    /** Runs bench/child.mjs with `job`; returns its result. */
    async function runChild(job, { timeoutMs = childTimeout } = {}) {
      // The baseline is another tree (its own JS) with its own addon.
      const childEnv = job.impl === 'baseline' ? { ...env, NAPI_RS_NATIVE_LIBRARY_PATH: baseline.addon } : env
      const full = job.impl === 'baseline' ? { bucket, baselineDir: baseline.dir, ...job } : { bucket, ...job }
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
    async function seedByPush(prefix, dir, expected = null) {
      const t = performance.now()
      rmSync(path.join(dir, '.s3ws'), { recursive: true, force: true })
      const r = await runChild({ impl: 'ours', op: 'push', prefix, workspaceDir: dir, endpoint: server.endpoint }, { timeoutMs: longTimeout })
      if (!r.result?.success || (expected !== null && r.result.uploadedFiles !== expected)) {
        throw new Error(`seeding ${prefix} failed: uploaded ${r.result?.uploadedFiles} of ${expected ?? 'all'} files: ${JSON.stringify(r.result?.errors)}`)
      }
      return performance.now() - t
    }
    const logSeeded = (prefix, n, ms) => console.log(`Seeded ${prefix} (${n.toLocaleString('en')} files of 1 KiB, by our push) in ${fmtMs(ms)}`)

    await seedByPush('big/', path.dirname(tplBig), 1)
    if (wants('cold-pull-many', 'warm-pull-many', 'noop-push-many')) {
      writeWorkload(tplMany, manyFiles)
      logSeeded('many/', many.files, await seedByPush('many/', tplMany, many.files))
    }
    if (wants('delete-push')) {
      writeWorkload(tplDel, del.files)
      logSeeded('del/', del.files.length, await seedByPush('del/', tplDel, del.files.length))
    }

    /**
     * Pulled workspaces kept across runs, by `<workspace key>:<impl>` (see
     * `workspace` in the scenarios): pulling 50,000 files again before every
     * run would take longer than the runs. They live under `base`, removed
     * at the end with the rest.
     */
    const kept = new Map()

    /** One run of `impl` in `scenario`; returns a sample. */
    async function runOnce(scenario, impl, { counting = false } = {}) {
      const endpoint = counting ? proxy.endpoint : (slow?.endpoint ?? server.endpoint)
      const timeoutMs = scenario.timeoutMs ?? childTimeout
      // Kept only for implementations a selected scenario will reuse it for.
      const key = scenario.workspace && keepFor.has(`${scenario.workspace.key}:${impl}`) ? `${scenario.workspace.key}:${impl}` : null
      const reused = key && scenario.workspace.reuse ? kept.get(key) : undefined
      const dir = reused ?? newDir()
      let ok = false
      const ctx = {
        dir,
        endpoint,
        // An untimed pull into the run's workspace, by `impl`, in its own process.
        pullFirst: async (prefix) => {
          const r = await runChild({ impl, op: 'pull', prefix, workspaceDir: dir, endpoint: server.endpoint }, { timeoutMs })
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
          const args = ['--endpoint', endpoint, '--bucket', bucket, '--prefix', scenario.prefix(ctx)]
          if (impl === 'single-stream') {
            mkdirSync(dir, { recursive: true })
            args.push('--to-dir', dir, '--concurrency', '1')
          }
          if (impl === 'raw-multipart') args.push('--upload', path.join(dir, 'big.bin'))
          const { stdout } = await runProcess(native.floorProbe, args, { env, timeoutMs })
          const r = JSON.parse(stdout.trim().split('\n').pop())
          sample = { ms: r.ms, maxRssKB: r.maxRssKB, cpuMs: r.cpuMs, processCpuMs: r.cpuMs, fetched: { files: r.objects, bytes: r.bytes } }
        } else {
          sample = await runChild(
            {
              impl,
              op: scenario.op,
              prefix: scenario.prefix(ctx),
              workspaceDir: dir,
              endpoint,
              setupPull: Boolean(scenario.setupPull),
              edits: scenario.edits ?? null,
              options: scenario.options ?? null,
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

    const expectTree = (s) => (s.after ?? s.fetched)
    /** A check: the workspace (or what the probe fetched) holds exactly `want`'s files and bytes. */
    const treeIs = (want) => (s) => {
      const t = expectTree(s)
      return t.files === want.files && t.bytes === want.bytes ? null : `got ${t.files} files / ${t.bytes} B`
    }
    const pushedNothing = (s) =>
      s.result.uploadedFiles === 0 && s.result.deletedFiles === 0 ? null : `uploaded ${s.result.uploadedFiles}, deleted ${s.result.deletedFiles}`
    const nMany = many.files.toLocaleString('en')
    // Long runs: one timed rep, and a time limit for the slowest peer.
    const longRuns = { reps: 1, timeoutMs: longTimeout }
    const scenarios = [
      {
        name: 'cold-pull',
        title: `cold pull (${ws.files} files, ${(ws.bytes / 1e6).toFixed(0)} MB, empty workspace)`,
        impls: ['reference', 'ours', 'floor'],
        op: 'pull',
        prefix: () => 'ws/',
        check: treeIs(ws),
      },
      {
        name: 'warm-pull',
        title: 'warm pull (fresh instance, workspace unchanged)',
        impls: ['reference', 'ours'],
        op: 'pull',
        prefix: () => 'ws/',
        // The workspace a previous process of the same implementation pulled
        // (with whatever state that implementation keeps there).
        prepare: (ctx) => ctx.pullFirst('ws/'),
        check: treeIs(ws),
      },
      {
        name: 'noop-push',
        title: 'no-op push (after a pull, nothing changed)',
        impls: ['reference', 'ours'],
        op: 'push',
        // A cold pull into an empty workspace by the same instance, as an
        // agent would start (a copied workspace would leave every file with a
        // just-now mtime, which a stat cache must distrust).
        setupPull: true,
        prefix: () => 'ws/',
        check: pushedNothing,
      },
      {
        name: 'edit-push',
        title: 'edit push (after a pull: 10 edited + 5 new + 3 deleted)',
        impls: ['reference', 'ours'],
        op: 'push',
        setupPull: true,
        edits,
        prefix: () => 'edit/',
        check: (s) =>
          s.result.uploadedFiles === 15 && s.result.deletedFiles === 3 && s.result.success
            ? null
            : `uploaded ${s.result.uploadedFiles}, deleted ${s.result.deletedFiles}`,
        // Put the prefix back as it was.
        after: async () => {
          await mapLimit([...edits.edit, ...edits.remove.map((p) => ({ path: p, size: files.find((f) => f.path === p).size }))], 8, (f) =>
            admin.send(new PutObjectCommand({ Bucket: bucket, Key: `edit/${f.path}`, Body: fileContent(f.path, f.size) })),
          )
          await mapLimit(edits.add, 8, (f) => admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `edit/${f.path}` })))
        },
      },
      {
        name: 'push-big',
        title: `${bigSize / MiB} MiB push (one new file, fresh instance)`,
        impls: ['reference', 'ours', 'raw-multipart'],
        op: 'push',
        prefix: (ctx) => `bigpush/${path.basename(ctx.dir)}/`,
        prepare: (ctx) => {
          mkdirSync(ctx.dir, { recursive: true })
          cpSync(tplBig, path.join(ctx.dir, 'big.bin'))
        },
        check: (s) => (!s.result || (s.result.uploadedFiles === 1 && s.result.success) ? null : `uploaded ${s.result.uploadedFiles}`),
        after: (ctx) => admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `bigpush/${path.basename(ctx.dir)}/big.bin` })).catch(() => {}),
      },
      {
        name: 'pull-big',
        title: `${bigSize / MiB} MiB pull (one object pushed by this package, empty workspace)`,
        impls: ['reference', 'ours', 'single-stream'],
        op: 'pull',
        prefix: () => 'big/',
        check: (s) => (expectTree(s).bytes === bigSize ? null : `got ${expectTree(s).bytes} B`),
      },
      {
        name: 'pull-big-single',
        title: `${bigSize / MiB} MiB pull of an object sent elsewhere in one PUT (verified by its whole MD5)`,
        impls: ['ours', 'single-stream'],
        op: 'pull',
        prefix: () => 'bigone/',
        check: (s) => (expectTree(s).bytes === bigSize ? null : `got ${expectTree(s).bytes} B`),
      },
      // Many small files: per-file costs rather than bytes. `workspace`: the
      // cold pull keeps each implementation's last good workspace under
      // `many:<impl>`; the warm pull and the no-op push run in it (`reuse`),
      // every run, and leave it there.
      {
        name: 'cold-pull-many',
        title: `cold pull (${nMany} files of 1 KiB, empty workspace)`,
        impls: ['reference', 'ours', 'floor'],
        op: 'pull',
        prefix: () => 'many/',
        ...longRuns,
        workspace: { key: 'many' },
        check: treeIs(many),
      },
      {
        // No reference: it keeps no state, its warm pull is its cold pull.
        name: 'warm-pull-many',
        title: `warm pull (${nMany} files, fresh instance, workspace unchanged)`,
        impls: ['ours'],
        op: 'pull',
        prefix: () => 'many/',
        ...longRuns,
        workspace: { key: 'many', reuse: true },
        check: treeIs(many),
      },
      {
        name: 'noop-push-many',
        title: `no-op push (${nMany} files, after a pull, nothing changed)`,
        impls: ['ours'],
        op: 'push',
        // On the kept workspace this setup pull is a warm one.
        setupPull: true,
        prefix: () => 'many/',
        ...longRuns,
        workspace: { key: 'many', reuse: true },
        check: pushedNothing,
      },
      {
        name: 'delete-push',
        title: `delete push (after a pull: ${del.remove.length.toLocaleString('en')} of ${del.files.length.toLocaleString('en')} files deleted)`,
        impls: ['reference', 'ours'],
        op: 'push',
        setupPull: true,
        edits: { edit: [], add: [], remove: del.remove },
        // Deleting 3,000 of 3,200 trips the mass-deletion guard (more than
        // 50% by default: it deletes nothing, MASS_DELETE); off here.
        options: { maxDeletePercent: 100 },
        prefix: () => 'del/',
        check: (s) =>
          s.result.deletedFiles === del.remove.length && s.result.uploadedFiles === 0 && s.result.success
            ? null
            : `uploaded ${s.result.uploadedFiles}, deleted ${s.result.deletedFiles}${s.result.errors ? `: ${s.result.errors[0]}` : ''}`,
        // Put the deleted objects back, as this package made them.
        after: () => seedByPush('del/', tplDel),
      },
    ]
      .filter((s) => !opts.only || opts.only.includes(s.name))
      .map((s) => (baseline ? { ...s, impls: s.impls.flatMap((i) => (i === 'ours' ? ['ours', 'baseline'] : [i])) } : s))
      // rclone and `aws s3 sync` in every scenario, when installed.
      .map((s) => ({ ...s, impls: [...s.impls, ...peers.available] }))
    if (scenarios.length === 0) throw new Error(`--only matched no scenario`)
    // Which kept workspaces (`<key>:<impl>`) a selected scenario will reuse.
    const keepFor = new Set(scenarios.filter((s) => s.workspace?.reuse).flatMap((s) => s.impls.map((i) => `${s.workspace.key}:${i}`)))

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
    for (const sc of scenarios) {
      console.log(`\n== ${sc.title}`)
      const reps = Math.min(opts.reps, sc.reps ?? opts.reps)
      const entry = { name: sc.name, title: sc.title, reps, impls: {} }
      for (const impl of sc.impls) entry.impls[impl] = { samples: [], counts: null, countRun: null }
      if (proxy) {
        for (const impl of sc.impls) {
          proxy.reset()
          const s = await runOnce(sc, impl, { counting: true })
          // Setup pulls go through the proxy too; the child resets the
          // counts (MARK_PATH) right before its measured step.
          entry.impls[impl].counts = s.error ? null : proxy.snapshot()
          entry.impls[impl].countRun = s
          console.log(`  count  ${impl.padEnd(13)} ${s.error ? `FAILED: ${s.error}` : formatCounts(entry.impls[impl].counts)}`)
        }
      }
      for (let rep = 0; rep < reps; rep++) {
        const k = rep % sc.impls.length
        const order = [...sc.impls.slice(k), ...sc.impls.slice(0, k)]
        for (const impl of order) {
          await waitQuiet()
          const s = await runOnce(sc, impl)
          entry.impls[impl].samples.push(s)
          const note = s.error ? `FAILED: ${s.error}` : `${fmtMs(s.ms)}  rss ${fmtMiB(s.maxRssKB)}${s.problem ? `  CHECK: ${s.problem}` : ''}`
          console.log(`  rep ${rep + 1}  ${impl.padEnd(13)} ${note}`)
        }
      }
      results.push(entry)
    }

    const report = renderReport({ opts, results, native, baseline, ws, many, del, bigSize, server, tmpBase, elapsedMs: Date.now() - started, waitedMs, peers })
    console.log(`\n${report}`)
    const out = opts.out ?? path.join(ROOT, 'bench', 'results', opts.quick ? 'quick.md' : 'latest.md')
    mkdirSync(path.dirname(out), { recursive: true })
    writeFileSync(out, report)
    writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify({ opts, native, workload: ws, many, bigSize, results }, null, 1))
    console.log(`Written to ${path.relative(ROOT, out)} (raw samples: ${path.relative(ROOT, out.replace(/\.md$/, '.json'))})`)
  } finally {
    await cleanup()
  }
}

// ---- report -------------------------------------------------------------------

function stats(samples) {
  const ok = samples.filter((s) => !s.error)
  if (ok.length === 0) return null
  const pick = (f) => ok.map(f).filter((x) => Number.isFinite(x))
  return {
    n: ok.length,
    failed: samples.length - ok.length,
    ms: median(pick((s) => s.ms)),
    min: Math.min(...pick((s) => s.ms)),
    max: Math.max(...pick((s) => s.ms)),
    rssKB: median(pick((s) => s.maxRssKB)),
    lagMax: ok[0].lagMaxMs === undefined ? null : median(pick((s) => s.lagMaxMs)),
    lagP99: ok[0].lagP99Ms === undefined ? null : median(pick((s) => s.lagP99Ms)),
    serverCpu: median(pick((s) => s.serverCpuMs)),
    cpu: median(pick((s) => s.cpuMs)),
    otherCpu: Math.max(...pick((s) => s.otherCpuMs / s.wallMs)),
    problems: ok.map((s) => s.problem).filter(Boolean),
  }
}

function renderReport({ opts, results, native, baseline, ws, many, del, bigSize, tmpBase, elapsedMs, waitedMs, peers }) {
  const cpu = os.cpus()[0]?.model ?? 'unknown'
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no']) ? ' (uncommitted changes)' : ''
  const lines = []
  lines.push(`# Benchmark results${opts.quick ? ' (quick)' : ''}`, '')
  lines.push(`- Date: ${new Date().toISOString()}; total run ${(elapsedMs / 60000).toFixed(1)} min`)
  lines.push(`- Machine: ${os.availableParallelism?.() ?? os.cpus().length} CPUs (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`)
  lines.push(`- Load average at the end (1/5/15 min): ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')}; waited ${Math.round(waitedMs / 1000)} s in all for other processes to go quiet before timed runs`)
  lines.push(`- Node ${process.version}; SeaweedFS 4.48 (\`weed mini\`, 30 GB volumes), data and workspaces on ${tmpBase}, loopback${opts.latency ? `; timed runs through a proxy adding ${opts.latency} ms to each request and each answer (${2 * opts.latency} ms per round trip)` : ''}`)
  lines.push(`- Code: ${sh('git', ['rev-parse', '--short', 'HEAD'])}${dirty}; release addon built ${native.builtAt} from ${native.source}${native.stale ? ' (Rust sources in the working tree have changed since)' : ''}${baseline ? `; baseline: the package at ${baseline.commit}, built from that commit` : ''}`)
  const ran = (...names) => results.some((r) => names.includes(r.name))
  const nMany = many.files.toLocaleString('en')
  const extra = [
    ran('cold-pull-many', 'warm-pull-many', 'noop-push-many') ? `many files: ${nMany} of 1 KiB in ${many.dirs} directories` : '',
    ran('delete-push') ? `deletions: ${del.files.length.toLocaleString('en')} files of 1 KiB, ${del.remove.length.toLocaleString('en')} of them deleted` : '',
  ].filter(Boolean)
  lines.push(`- Workload: ${ws.files} files, ${(ws.bytes / 1e6).toFixed(1)} MB, ${ws.dirs} directories; big file ${bigSize / MiB} MiB${extra.map((x) => `; ${x}`).join('')}; ${opts.reps} timed reps per implementation, order rotated each rep; medians`)
  const fewer = results.filter((r) => r.reps < opts.reps)
  if (fewer.length) lines.push(`- Fewer timed reps (long runs): ${fewer.map((r) => `${r.name} ${r.reps}`).join(', ')} per implementation, not ${opts.reps}`)
  lines.push('')
  lines.push('| scenario | impl | median time (min–max) | client CPU | server CPU | peak RSS | requests | loop lag max / p99 | ratio |')
  lines.push('|---|---|---|---|---|---|---|---|---|')
  const targets = []
  for (const r of results) {
    const st = Object.fromEntries(Object.entries(r.impls).map(([k, v]) => [k, stats(v.samples)]))
    const ours = st.ours
    const ref = st.reference
    for (const [impl, v] of Object.entries(r.impls)) {
      const s = st[impl]
      if (!s) {
        lines.push(`| ${r.title} | ${impl} | FAILED: ${v.samples[0]?.error ?? ''} | | | | | | |`)
        continue
      }
      let ratio = ''
      if (impl === 'ours' && ref) ratio = `${fmtX(ref.ms / s.ms)} faster than reference`
      if (impl === 'baseline' && ours) ratio = `ours ${fmtX(s.ms / ours.ms)} the speed of ${baseline.commit}`
      if (impl === 'floor' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} floor`
      if (impl === 'single-stream' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} single stream`
      if (impl === 'raw-multipart' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} raw multipart`
      if (PEERS.includes(impl) && ours) ratio = `ours ${fmtX(s.ms / ours.ms)} faster than ${impl}`
      const lag = s.lagMax === null ? '–' : `${s.lagMax.toFixed(0)} / ${s.lagP99.toFixed(0)} ms`
      const flags = [
        s.failed ? `${s.failed} failed` : '',
        s.otherCpu > 0.2 ? `other processes used up to ${s.otherCpu.toFixed(1)} cores` : '', ...new Set(s.problems.map((p) => `check: ${p}`))].filter(Boolean).join('; ')
      lines.push(
        `| ${r.title} | ${impl} | ${fmtMs(s.ms)} (${fmtMs(s.min)}–${fmtMs(s.max)})${flags ? ` ⚠ ${flags}` : ''} | ${fmtMs(s.cpu)} | ${fmtMs(s.serverCpu)} | ${fmtMiB(s.rssKB)} | ${formatCounts(v.counts)} | ${lag} | ${ratio} |`,
      )
    }
    const t = (what, target, measured, pass) => targets.push({ what, target, measured, pass })
    const speedup = ours && ref ? ref.ms / ours.ms : null
    const n = (impl, k) => r.impls[impl]?.counts?.[k] ?? 0
    const vsFloorAndRclone = (what) => {
      if (st.floor) t(`${what} vs floor probe`, '≤ 1.1×', fmtX(ours.ms / st.floor.ms), ours.ms / st.floor.ms <= 1.1)
      if (st.rclone) t(`${what} vs rclone`, '≥ 1.1× faster', fmtX(st.rclone.ms / ours.ms), st.rclone.ms / ours.ms >= 1.1)
    }
    if (r.name === 'cold-pull' && ours) {
      if (speedup) t('cold pull vs reference', '≥ 4×', fmtX(speedup), speedup >= 4)
      vsFloorAndRclone('cold pull')
      t('event-loop lag during cold pull (max)', '≤ 20 ms', `${ours.lagMax.toFixed(1)} ms (p99 ${ours.lagP99.toFixed(1)} ms)`, ours.lagMax <= 20)
    }
    if (r.name === 'cold-pull-many' && ours) {
      vsFloorAndRclone(`cold pull ${nMany} files`)
      t(`peak RSS ${nMany}-file cold pull (whole Node process)`, '≤ 150 MiB', fmtMiB(ours.rssKB), ours.rssKB <= 150 * 1024)
    }
    if (r.name === 'delete-push' && r.impls.ours?.counts) {
      const reqs = n('ours', 'DELETE') + n('ours', 'DEL-BATCH')
      t(`${del.remove.length.toLocaleString('en')} deletions: requests`, '≤ 5', String(reqs), reqs <= 5)
    }
    if (r.name === 'warm-pull' && ours) {
      if (r.impls.ours.counts) t('warm pull GETs', '0', String(n('ours', 'GET')), n('ours', 'GET') === 0)
      if (speedup) t('warm pull vs reference', '≥ 30×', fmtX(speedup), speedup >= 30)
    }
    if (r.name === 'noop-push' && speedup) t('no-op push vs reference', '≥ 10×', fmtX(speedup), speedup >= 10)
    if (r.name === 'edit-push' && speedup) t('edit push vs reference', '≥ 5×', fmtX(speedup), speedup >= 5)
    if (r.name === 'push-big' && ours) {
      if (speedup) t(`${bigSize / MiB} MiB push vs reference`, '≥ 3×', fmtX(speedup), speedup >= 3)
      t(`${bigSize / MiB} MiB push peak RSS (whole Node process)`, '≤ 150 MiB', fmtMiB(ours.rssKB), ours.rssKB <= 150 * 1024)
      const raw = st['raw-multipart']
      if (raw) t(`${bigSize / MiB} MiB push vs raw multipart (no hashing)`, '≤ 1.1×', fmtX(ours.ms / raw.ms), ours.ms / raw.ms <= 1.1)
    }
    if (r.name === 'pull-big' && ours) {
      const single = st['single-stream']
      if (single) t(`${bigSize / MiB} MiB pull vs single GET to disk (every byte verified)`, '≤ 1.3×', fmtX(ours.ms / single.ms), ours.ms / single.ms <= 1.3)
      t(`${bigSize / MiB} MiB pull peak RSS (whole Node process)`, '≤ 150 MiB', fmtMiB(ours.rssKB), ours.rssKB <= 150 * 1024)
    }
  }
  lines.push('')
  lines.push('Targets (issues 4 and 13):', '')
  lines.push('| target | wanted | measured | |')
  lines.push('|---|---|---|---|')
  for (const x of targets) lines.push(`| ${x.what} | ${x.target} | ${x.measured} | ${x.pass ? '✅' : '❌'} |`)
  lines.push('')
  lines.push('Notes:')
  lines.push('- Time: the measured operation only (instance built and setup pull/edits done before the clock starts), in a fresh child process each run. floor / single-stream: the probe\'s own clock (client setup + listing + GETs), no process start.')
  lines.push('- Peak RSS: `process.resourceUsage().maxRSS` of the whole child at the end (probe: VmHWM). For the push scenarios after a setup pull it includes that pull.')
  lines.push('- Requests: one separate untimed pass through a counting proxy; only the measured operation is counted (setup pulls excluded).')
  lines.push('- Client CPU: user + system time of the child process (all threads) during the operation. Server CPU: CPU time SeaweedFS used during the operation; it shares the 2 cores, so client + server CPU close to 2 × time means the machine was saturated.')
  lines.push('- Loop lag: `perf_hooks.monitorEventLoopDelay` (1 ms resolution) in the child during the operation.')
  lines.push('- Other load: CPU used by processes outside the benchmark during each run (/proc/stat), flagged ⚠ when above 0.2 cores.')
  lines.push('- ours (and baseline): `downloadConcurrency` and `uploadConcurrency` 64, as the floor probe and the peers get; the package defaults are upstream\'s 50 and 10.')
  lines.push('- reference: bench/reference.mjs, the upstream algorithm with @aws-sdk/client-s3 defaults (50 GETs / 10 PUTs in flight). floor: list + GET all at 64 in flight into memory, no disk, no hashing. single-stream: one GET streamed to disk, no hashing. raw-multipart: the file uploaded in 8 MiB parts, 6 in flight, as the engine does, with no hashing and no Content-MD5.')
  if (ran('cold-pull-many', 'warm-pull-many', 'noop-push-many')) {
    lines.push(`- ${nMany}-file scenarios: the warm pull and the no-op push run in the workspace the same implementation pulled in cold-pull-many (or, when that did not run, in one untimed pull of its own), every run in the same directory.`)
  }
  if (ran('delete-push')) {
    lines.push(`- delete-push: ours (and baseline) are built with \`maxDeletePercent: 100\`: deleting ${del.remove.length.toLocaleString('en')} of ${del.files.length.toLocaleString('en')} files is over the mass-deletion guard's default 50%, which would delete nothing (MASS_DELETE). After each run this package's push from the template puts the deleted objects back. The files live under scratch/, not build/, which the package ignores by default.`)
  }
  lines.push(`- rclone: \`rclone sync --checksum --fast-list --transfers=64 --checkers=64\`; awscli: \`aws s3 sync --delete\` with max_concurrent_requests = 64 (Debian packages). Each is its own process: the time includes its start-up; RSS and CPU are its own (GNU time). Peers not installed: ${peers.missing.join('; ') || 'none'}.`)
  return lines.join('\n') + '\n'
}

main().catch((e) => {
  console.error(e?.stack ?? e)
  process.exit(1)
})
