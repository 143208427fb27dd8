import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, readTree, recordingLogger, quiet } from './helpers.mjs'

async function seeded(n) {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < n; i++) files[`dir${i % 7}/f${i}.txt`] = `content ${i}`
  await seed(bucket, 'p/', files)
  return { bucket, files }
}

test('a 120-file pull emits download progress up to 100%', async () => {
  const { bucket, files } = await seeded(120)
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  const events = []
  sync.on('progress', (p) => events.push(p))
  await sync.pull()
  await new Promise((r) => setImmediate(r))
  const downloads = events.filter((e) => e.phase === 'download')
  // About 20 by files finished, one with the final total once the listing ends, and in-flight byte updates on a slow server.
  assert.ok(downloads.length >= 10 && downloads.length <= 30, `${downloads.length} events`)
  assert.equal(events[0].phase, 'download')
  // Downloads start while the listing runs: the total may grow, up to every file.
  assert.ok(events[0].total > 0 && events[0].total <= 120, `first total ${events[0].total}`)
  // The phase starts at 0% and ends at 100% with every byte.
  const totalBytes = Object.values(files).reduce((n, b) => n + Buffer.byteLength(b), 0)
  assert.deepEqual([downloads[0].current, downloads[0].percentage, downloads[0].bytes], [0, 0, 0])
  const last = downloads.at(-1)
  assert.deepEqual([last.percentage, last.current, last.total, last.bytes, last.totalBytes], [100, 120, 120, totalBytes, totalBytes])
  for (let i = 1; i < downloads.length; i++) {
    const [a, b] = [downloads[i - 1], downloads[i]]
    assert.ok(b.bytes >= a.bytes && b.percentage >= a.percentage && b.total >= a.total && b.totalBytes >= a.totalBytes)
    // 100% comes once the total is final, and only then.
    assert.ok(a.percentage < 100)
  }
  // Events for finished files (the rest are in-flight byte updates, sent when a slow run takes 250 ms).
  const finished = downloads.filter((e) => e.currentFile !== undefined)
  assert.ok(finished.length >= 10)
  for (let i = 1; i < finished.length; i++) assert.ok(finished[i].current > finished[i - 1].current)
  for (const e of finished) assert.ok(Math.abs(e.percentage - Math.round((e.current / e.total) * 100)) <= 1 || e.percentage === 99, `${e.current}/${e.total}: ${e.percentage}%`)
})

test('a large file reports bytes while it moves, both ways', async () => {
  const { randomBuffer } = await import('./helpers.mjs')
  const bucket = await newBucket()
  const size = 48 * 1024 * 1024
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'big.bin'), randomBuffer(size))
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const events = []
  sync.on('progress', (p) => events.push(p))
  await sync.push()
  await new Promise((r) => setImmediate(r))
  const up = events.filter((e) => e.phase === 'upload')
  // 0%, in-flight updates (one per 8 MiB part at most), 100%.
  assert.deepEqual([up[0].bytes, up.at(-1).bytes, up.at(-1).totalBytes], [0, size, size])
  assert.ok(up.filter((e) => e.current === 0 && e.bytes > 0).length >= 2, JSON.stringify(up))

  const pulled = []
  const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  other.on('progress', (p) => pulled.push(p))
  await other.pull()
  await new Promise((r) => setImmediate(r))
  const down = pulled.filter((e) => e.phase === 'download')
  assert.deepEqual([down[0].bytes, down.at(-1).bytes, down.at(-1).totalBytes], [0, size, size])
  const inFlight = down.filter((e) => e.current === 0 && e.bytes > 0)
  assert.ok(inFlight.length >= 2 && inFlight.length <= 12, `${inFlight.length} in-flight events`)
})

test('push emits upload and cleanup progress', async () => {
  const { bucket } = await seeded(3)
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  for (let i = 0; i < 30; i++) writeFileSync(path.join(dir, `n${i}.txt`), `${i}`)
  const { rmSync } = await import('node:fs')
  rmSync(path.join(dir, 'dir0'), { recursive: true })
  const events = []
  sync.on('progress', (p) => events.push(p))
  const result = await sync.push()
  await new Promise((r) => setImmediate(r))
  assert.equal(result.uploadedFiles, 30)
  assert.equal(result.deletedFiles, 1)
  const uploads = events.filter((e) => e.phase === 'upload')
  assert.equal(uploads[0].total, 30)
  assert.equal(uploads.at(-1).percentage, 100)
  assert.deepEqual(
    events.filter((e) => e.phase === 'cleanup').map((e) => e.current),
    [0, 1],
  )
})

test('the logger receives the engine log records', async () => {
  const { bucket } = await seeded(2)
  const { logger, calls } = recordingLogger()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger })
  await sync.pull()
  await new Promise((r) => setImmediate(r))
  const info = calls.filter((c) => c.level === 'info').map((c) => c.message)
  assert.ok(
    info.some((m) => m.startsWith('Pulling from s3://')),
    info.join('\n'),
  )
  assert.ok(
    info.some((m) => m.startsWith('Pull complete: 2 downloaded, 0 deleted in ')),
    info.join('\n'),
  )
  assert.ok(calls.some((c) => c.level === 'debug' && c.message.startsWith('Initialized: bucket=')))
  for (const c of calls) assert.equal(typeof c.message, 'string')
})

test('background pull: waitForPull, isPullComplete, push waits for it', async () => {
  const { bucket, files } = await seeded(60)
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  assert.equal(sync.isPullComplete(), false)
  await sync.waitForPull() // nothing started: resolves at once
  const handle = sync.startBackgroundPull()
  assert.deepEqual(Object.keys(handle).sort(), ['cancel', 'done', 'priorityDone'])
  assert.equal(sync.isPullComplete(), false)
  const waited = await sync.waitForPull()
  assert.equal(sync.isPullComplete(), true)
  assert.equal(waited.success, true)
  assert.equal(waited.downloadedFiles, 60)
  assert.equal(await handle.done, waited)
  assert.deepEqual(readTree(dir), files)
  assert.equal(sync.getWorkspacePath(), dir)
  // A second background pull is not complete until it finishes.
  sync.startBackgroundPull()
  assert.equal(sync.isPullComplete(), false)
  await sync.waitForPull()
  assert.equal(sync.isPullComplete(), true)

  // push() started right after startBackgroundPull() sees the pulled snapshot:
  // nothing to upload, nothing deleted.
  const dir2 = tmpDir()
  const sync2 = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir2, endpoint, logger: quiet() })
  sync2.startBackgroundPull()
  const pushed = await sync2.push()
  assert.equal(sync2.isPullComplete(), true)
  assert.deepEqual(pushed, { success: true, uploadedFiles: 0, deletedFiles: 0, duration: pushed.duration, transferredFiles: 0, unchangedFiles: 60, bytesTransferred: 0 })
})

test('a failed background pull is logged and still completes', async () => {
  const { logger, calls } = recordingLogger()
  const sync = new S3WorkspaceSync({ bucket: 'no-such-bucket-xyz', prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger })
  sync.startBackgroundPull()
  await sync.waitForPull()
  assert.equal(sync.isPullComplete(), true)
  assert.ok(calls.some((c) => c.level === 'error' && c.message.includes('Background pull failed')))
})
