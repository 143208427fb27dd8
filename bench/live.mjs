// Live shared workspaces (issue 26): `npm run bench -- --only live`.
//
// For each size (the 2,116-file agent workspace, 50,000 files of 1 KiB;
// --quick: the small workloads), a watcher B follows the prefix through a
// counting proxy (behind the latency proxy with --latency) while another
// instance A, not watching, pushes 20 edits at random moments. Printed, side
// by side:
//   - propagation: the time from A's push() resolving until B's disk holds
//     the new bytes (p50, p95, max over the 20 edits);
//   - idle cost: B's requests a minute while nothing changes, counted over
//     one full safety-net interval (at least a minute), by kind.
// The release addon (bench/.native, as the other scenarios) is loaded in
// this process; the file system is polled every 2 ms, so the figures are
// the watcher's, not a notification's.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { startCountingProxy, startLatencyProxy, formatCounts } from './proxy.mjs'
import { generateWorkload, generateMany, writeWorkload } from './workload.mjs'
import { fmtMs } from './report.mjs'

const EDITS = 20
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

/**
 * Runs the live benchmark; returns the markdown it printed.
 * @param {{ opts: { quick: boolean, latency: number }, server: { endpoint: string, env: Record<string, string> }, addon: string, tmp: string, bucket: string }} ctx
 */
export async function runLive({ opts, server, addon, tmp, bucket }) {
  // In this process, as the children get them: the server's credentials,
  // and the release addon.
  const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_EC2_METADATA_DISABLED } = server.env
  Object.assign(process.env, { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_EC2_METADATA_DISABLED, NAPI_RS_NATIVE_LIBRARY_PATH: addon })
  const require = createRequire(import.meta.url)
  const { S3WorkspaceSync } = require('..')
  const sizes = [
    { key: 'live-ws', files: generateWorkload({ quick: opts.quick }) },
    { key: 'live-many', files: generateMany({ quick: opts.quick }) },
  ]
  const rows = []
  for (const { key, files } of sizes) {
    const prefix = `${key}/`
    const n = files.length
    // Seeded by a push of this package, as an agent's workspace is.
    const seedDir = mkdtempSync(path.join(tmp, 'live-seed-'))
    writeWorkload(seedDir, files)
    const seeded = await new S3WorkspaceSync({ bucket, prefix, workspaceDir: seedDir, endpoint: server.endpoint, logger: quiet, maxDeletePercent: 100 }).push()
    if (!seeded.success) throw new Error(`seeding ${prefix} failed: ${seeded.errors?.[0]}`)
    rmSync(seedDir, { recursive: true, force: true })

    const latency = opts.latency ? await startLatencyProxy(server.endpoint, opts.latency) : null
    const counting = await startCountingProxy(latency?.endpoint ?? server.endpoint)
    const bDir = mkdtempSync(path.join(tmp, 'live-b-'))
    const b = new S3WorkspaceSync({ bucket, prefix, workspaceDir: bDir, endpoint: counting.endpoint, logger: quiet, downloadConcurrency: 64 })
    const watcher = await b.watch()
    // A: another instance (through the same latency), pushing new and edited notes.
    const aDir = mkdtempSync(path.join(tmp, 'live-a-'))
    const a = new S3WorkspaceSync({ bucket, prefix, workspaceDir: aDir, endpoint: latency?.endpoint ?? server.endpoint, logger: quiet })
    mkdirSync(path.join(aDir, 'live'))
    const lags = []
    for (let i = 0; i < EDITS; i++) {
      // At a random moment of B's poll cycle.
      await sleep(Math.random() * 1500)
      const rel = `live/note-${i % 5}.md`
      const body = `edit ${i} at ${Date.now()}\n`
      writeFileSync(path.join(aDir, rel), body)
      const pushed = await a.push()
      if (pushed.uploadedFiles !== 1) throw new Error(`edit ${i}: uploaded ${pushed.uploadedFiles}`)
      const t0 = performance.now()
      for (;;) {
        let now = ''
        try {
          now = readFileSync(path.join(bDir, rel), 'utf8')
        } catch {
          // not there yet
        }
        if (now === body) break
        if (performance.now() - t0 > 60_000) throw new Error(`edit ${i} not on B's disk within 60 s`)
        await sleep(2)
      }
      lags.push(performance.now() - t0)
    }
    // Idle: one whole safety-net interval (60 s, or 6 s per 1,000 files), counted.
    const window = Math.max(60_000, Math.ceil(n / 1000) * 6_000) + 5_000
    await sleep(3_000)
    counting.reset()
    const t0 = performance.now()
    await sleep(window)
    const counts = counting.snapshot()
    const minutes = (performance.now() - t0) / 60_000
    const total = Object.entries(counts).reduce((s, [k, v]) => (k === 'ranged' ? s : s + v), 0)
    await watcher.stop()
    await Promise.all([counting.close(), latency?.close()])
    rmSync(bDir, { recursive: true, force: true })
    rmSync(aDir, { recursive: true, force: true })
    lags.sort((x, y) => x - y)
    rows.push({ key, n, p50: pct(lags, 50), p95: pct(lags, 95), max: lags.at(-1), perMinute: total / minutes, counts, minutes })
    console.log(`${key}: p50 ${fmtMs(pct(lags, 50))}, p95 ${fmtMs(pct(lags, 95))}; idle ${(total / minutes).toFixed(1)} requests/min`)
  }
  const lines = [
    `## Live workspaces${opts.latency ? ` (${opts.latency} ms each way)` : ' (loopback)'}`,
    '',
    `Propagation: A's push() resolved → B's disk has the bytes, ${EDITS} edits at random moments. Idle: B's requests over one safety-net interval.`,
    '',
    '| workspace | p50 | p95 (target ≤ 2 s) | max | idle requests/min (target ≤ 60) | idle requests, by kind |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.n.toLocaleString('en')} files | ${fmtMs(r.p50)} | ${fmtMs(r.p95)} | ${fmtMs(r.max)} | ${r.perMinute.toFixed(1)} | ${formatCounts(r.counts)} in ${r.minutes.toFixed(1)} min |`,
    ),
    '',
  ]
  const md = lines.join('\n')
  console.log(`\n${md}`)
  return md
}
