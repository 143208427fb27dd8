// Checkpoints (issue 27): `npm run bench -- --only checkpoints`.
//
// The 2,116-file agent workspace on a versioned bucket: pushed (checkpoint
// C0), then 200 files modified, 100 deleted and 100 added and pushed again
// (C1). Side by side, in one run, through the same counting proxy (behind
// the latency proxy with --latency):
//   - restore: the instance that pushed C1 restores C0 (S3 and its disk);
//     undone (a restore of C1, not timed) before the next repetition;
//   - cold pull: a new instance pulls the same workspace into an empty
//     directory.
// Printed: median time of each, the ratio, and the requests of each by kind
// (a restore's server-side copies are PUTs with x-amz-copy-source).

import { mkdtempSync, rmSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { CreateBucketCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3'
import { startCountingProxy, startLatencyProxy, formatCounts } from './proxy.mjs'
import { generateWorkload, writeWorkload, fileContent } from './workload.mjs'
import { fmtMs } from './report.mjs'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** 200 modified, 100 deleted, 100 added: chosen deterministically. */
function turn(dir, files) {
  const small = files.filter((f) => f.size <= 256 * 1024)
  for (const f of small.slice(0, 200)) writeFileSync(path.join(dir, f.path), fileContent(f.path, f.size, 'turn'))
  for (const f of small.slice(200, 300)) unlinkSync(path.join(dir, f.path))
  for (let i = 0; i < 100; i++) {
    const rel = `agent/turn/new-${i}.md`
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
    writeFileSync(path.join(dir, rel), fileContent(rel, 2048 + i * 10, 'new'))
  }
}

/**
 * Runs the checkpoint benchmark; returns the markdown it printed.
 * @param {{ opts: { quick: boolean, latency: number, reps: number | null }, server: { endpoint: string, env: Record<string, string> }, addon: string, tmp: string, admin: import('@aws-sdk/client-s3').S3Client }} ctx
 */
export async function runCheckpoints({ opts, server, addon, tmp, admin }) {
  const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_EC2_METADATA_DISABLED } = server.env
  Object.assign(process.env, { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_EC2_METADATA_DISABLED, NAPI_RS_NATIVE_LIBRARY_PATH: addon })
  const require = createRequire(import.meta.url)
  const { S3WorkspaceSync } = require('..')
  const bucket = 'bench-versioned'
  await admin.send(new CreateBucketCommand({ Bucket: bucket }))
  await admin.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }))
  const files = generateWorkload({ quick: false })
  const latency = opts.latency ? await startLatencyProxy(server.endpoint, opts.latency) : null
  const counting = await startCountingProxy(latency?.endpoint ?? server.endpoint)
  const options = { bucket, prefix: 'ws/', endpoint: counting.endpoint, logger: quiet }
  const aDir = mkdtempSync(path.join(tmp, 'cp-a-'))
  writeWorkload(aDir, files)
  const a = new S3WorkspaceSync({ ...options, workspaceDir: aDir })
  const c0 = (await a.push()).checkpoint
  turn(aDir, files)
  const c1 = (await a.push()).checkpoint
  if (!c0 || !c1) throw new Error('no checkpoints: is versioning enabled on the bench server?')
  const reps = opts.reps ?? 3
  const times = { restore: [], pull: [] }
  const counts = {}
  for (let i = 0; i < reps; i++) {
    counting.reset()
    let t0 = performance.now()
    const restored = await a.restore({ checkpoint: c0 })
    times.restore.push(performance.now() - t0)
    counts.restore = counting.snapshot()
    if (!restored.success || restored.restoredFiles !== 300 || restored.deletedFiles !== 100) {
      throw new Error(`restore ${i}: ${JSON.stringify({ ...restored, errors: restored.errors?.slice(0, 3) })}`)
    }
    const undone = await a.restore({ checkpoint: c1 })
    if (!undone.success) throw new Error(`undo ${i}: ${undone.errors?.[0]}`)
    const dir = mkdtempSync(path.join(tmp, 'cp-cold-'))
    const cold = new S3WorkspaceSync({ ...options, workspaceDir: dir })
    counting.reset()
    t0 = performance.now()
    const pulled = await cold.pull()
    times.pull.push(performance.now() - t0)
    counts.pull = counting.snapshot()
    if (!pulled.success) throw new Error(`cold pull ${i}: ${pulled.errors?.[0]}`)
    await cold.close()
    rmSync(dir, { recursive: true, force: true })
    console.log(`rep ${i + 1}: restore ${fmtMs(times.restore.at(-1))}, cold pull ${fmtMs(times.pull.at(-1))}`)
  }
  await a.close()
  await Promise.all([counting.close(), latency?.close()])
  rmSync(aDir, { recursive: true, force: true })
  const [r, p] = [median(times.restore), median(times.pull)]
  const requests = (c) => Object.entries(c).reduce((s, [k, v]) => (k === 'ranged' ? s : s + v), 0)
  const lines = [
    `## Checkpoints: restore vs a cold pull${opts.latency ? ` (${opts.latency} ms each way)` : ' (loopback)'}`,
    '',
    `${files.length.toLocaleString('en')} files; since the checkpoint 200 modified, 100 deleted, 100 added. Median of ${reps}.`,
    '',
    '| operation | time | vs cold pull (target ≤ 1.00×) | requests | by kind |',
    '|---|---|---|---|---|',
    `| restore of the checkpoint (S3 and disk) | ${fmtMs(r)} | ${(r / p).toFixed(2)}× | ${requests(counts.restore)} | ${formatCounts(counts.restore)} |`,
    `| cold pull of the same workspace | ${fmtMs(p)} | 1.00× | ${requests(counts.pull)} | ${formatCounts(counts.pull)} |`,
    '',
  ]
  const md = lines.join('\n')
  console.log(`\n${md}`)
  return md
}
