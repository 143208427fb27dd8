// Live shared workspaces: two-way watch() between instances on one prefix,
// against the real server (and a proxy that counts, or cuts the server off).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, quiet, getObject, listKeys, putObject, readTree, startProxy, isList } from './helpers.mjs'
import { recordingLogger } from './local-helpers.mjs'

const JOURNAL = '.s3ws/changes.json'
/** The keys of the agents' files (the journal left out). */
const workKeys = async (bucket, prefix = 'p/') => (await listKeys(bucket, prefix)).filter((k) => !k.includes('/.s3ws/'))
/** The workspace's files (the engine's own `.s3ws` left out). */
// The workspace as the agent sees it: not the engine's state, nor a download
// in flight (`.s3ws-<tag>.partial`, renamed into place when complete).
const files = (dir) => Object.fromEntries(Object.entries(readTree(dir)).filter(([rel]) => !rel.startsWith('.s3ws/') && !/(^|\/)\.s3ws-[^/]*\.partial$/.test(rel)))

/** Resolves when `check()` is true (a throw counts as false); rejects after `ms`, saying what `what` is then. */
async function eventually(check, ms, what = () => '') {
  const deadline = Date.now() + ms
  for (;;) {
    if (
      await Promise.resolve()
        .then(check)
        .catch(() => false)
    )
      return Date.now()
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms ${await Promise.resolve().then(what).catch(String)}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** A watcher on its own directory, stopped after the test; its remote-change events collected. */
async function agent(t, bucket, options = {}, { via = endpoint, ...watch } = {}) {
  const dir = tmpDir()
  const { logger, calls } = recordingLogger()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: via, logger, ...options })
  const changes = []
  /** What it logged, for a failure's message. */
  const log = () => calls.map((c) => `${c.level} ${c.message}`).join('\n')
  sync.on('remote-change', (c) => changes.push(c))
  const watcher = await sync.watch({ debounceMs: 100, pollMs: 200, ...watch })
  t.after(() => watcher.stop())
  return { dir, sync, watcher, changes, log, file: (rel) => path.join(dir, rel) }
}

test('two watchers on one prefix: writes, edits, deletes and renames on either side reach the other disk and S3', async (t) => {
  const bucket = await newBucket()
  // Six files nobody touches: deleting two of a handful is within the
  // mass-deletion guard (half the synced files), as in any push.
  const kept = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`keep/k${i}.txt`, `${i}`]))
  await seed(bucket, 'p/', { 'shared.md': 'v1', 'docs/old-name.txt': 'moving', ...kept })
  const a = await agent(t, bucket)
  const b = await agent(t, bucket)
  /** The files the test moves (those under keep/ must just stay). */
  const moved = (dir) => {
    const all = files(dir)
    for (const [rel, body] of Object.entries(kept)) assert.equal(all[rel], body, rel)
    return Object.fromEntries(Object.entries(all).filter(([rel]) => !rel.startsWith('keep/')))
  }
  const converged = (want) =>
    eventually(
      async () => JSON.stringify(moved(a.dir)) === JSON.stringify(want) && JSON.stringify(moved(b.dir)) === JSON.stringify(want),
      10_000,
      () => `a: ${JSON.stringify(files(a.dir))} b: ${JSON.stringify(files(b.dir))}\n${a.log()}\n${b.log()}`,
    )

  writeFileSync(a.file('from-a.txt'), 'written on a')
  mkdirSync(b.file('b-dir/deep'), { recursive: true })
  writeFileSync(b.file('b-dir/deep/from-b.txt'), 'written on b')
  await converged({ 'b-dir/deep/from-b.txt': 'written on b', 'docs/old-name.txt': 'moving', 'from-a.txt': 'written on a', 'shared.md': 'v1' })
  // Each learned of the other's file from a remote-change event naming it
  // (sent when its pull ends, just after the files are in place).
  await eventually(
    () => b.changes.some((c) => c.paths.includes('from-a.txt')),
    2_000,
    () => `${JSON.stringify(b.changes)}\n${b.log()}`,
  )
  await eventually(
    () => a.changes.some((c) => c.paths.includes('b-dir/deep/from-b.txt')),
    2_000,
    () => `${JSON.stringify(a.changes)}\n${a.log()}`,
  )

  writeFileSync(b.file('shared.md'), 'v2 from b')
  rmSync(a.file('from-a.txt'))
  renameSync(a.file('docs/old-name.txt'), a.file('docs/new-name.txt'))
  const want = { 'b-dir/deep/from-b.txt': 'written on b', 'docs/new-name.txt': 'moving', 'shared.md': 'v2 from b' }
  await converged(want)
  const deleted = () => b.changes.flatMap((c) => c.deleted)
  await eventually(
    () => deleted().includes('from-a.txt') && deleted().includes('docs/old-name.txt'),
    2_000,
    () => `${JSON.stringify(b.changes)}\n${b.log()}`,
  )
  // S3 holds the same, and the journal is the engine's own: never pulled, never a result.
  const s3Moved = async () => (await workKeys(bucket)).filter((k) => !k.startsWith('p/keep/'))
  await eventually(async () => (await s3Moved()).length === 3, 5_000)
  assert.equal((await workKeys(bucket)).length, 9)
  assert.deepEqual(
    await s3Moved(),
    Object.keys(want)
      .map((k) => `p/${k}`)
      .sort(),
  )
  assert.equal((await getObject(bucket, 'p/shared.md')).toString(), 'v2 from b')
  assert.ok((await listKeys(bucket, 'p/')).includes(`p/${JOURNAL}`))
  assert.ok(!existsSync(a.file(JOURNAL)) || !readFileSync(a.file(JOURNAL), 'utf8').includes('"seq"'), 'the journal was pulled')

  // The other way round: b renames and deletes, a edits.
  renameSync(b.file('b-dir/deep/from-b.txt'), b.file('b-dir/renamed.txt'))
  rmSync(b.file('shared.md'))
  writeFileSync(a.file('docs/new-name.txt'), 'edited on a')
  const last = { 'b-dir/renamed.txt': 'written on b', 'docs/new-name.txt': 'edited on a' }
  await converged(last)
  await eventually(
    async () => JSON.stringify(await s3Moved()) === JSON.stringify(Object.keys(last).map((k) => `p/${k}`)),
    5_000,
    async () => JSON.stringify(await s3Moved()),
  )
})

test('one file edited on both sides within the same second: both versions kept and reported on both sides', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'plan.md': 'base' })
  const a = await agent(t, bucket)
  const b = await agent(t, bucket)
  writeFileSync(a.file('plan.md'), 'edit from a')
  writeFileSync(b.file('plan.md'), 'edit from b')
  // Each disk ends with both versions: one at the path, the other as a conflict copy.
  const versions = (dir) => Object.values(files(dir)).sort()
  const both = ['edit from a', 'edit from b']
  await eventually(
    () =>
      JSON.stringify(versions(a.dir)) === JSON.stringify(both) &&
      JSON.stringify(versions(b.dir)) === JSON.stringify(both) &&
      JSON.stringify(files(a.dir)) === JSON.stringify(files(b.dir)),
    15_000,
    () => `a: ${JSON.stringify(files(a.dir))} b: ${JSON.stringify(files(b.dir))}`,
  )
  // Both sides were told: the one whose push lost when it pulled the winner
  // (its version kept as a copy), the other when that copy arrived.
  const told = (side) => side.changes.some((c) => c.conflicts.includes('plan.md'))
  await eventually(
    () => told(a) && told(b),
    5_000,
    () => `${JSON.stringify({ a: a.changes, b: b.changes })}\n${a.log()}\n${b.log()}`,
  )
  await eventually(async () => (await workKeys(bucket)).length === 2, 5_000)
})

test('a writer that is not this package (the plain SDK) is picked up by the safety-net full pull; the journal alone would not see it', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const proxy = await startProxy()
  t.after(() => proxy.close())
  const a = await agent(t, bucket, {}, { via: proxy.endpoint, fullCheckMs: 1500 })
  const before = proxy.requests.length
  await putObject(bucket, 'p/sdk-wrote.txt', 'from the SDK')
  const at = Date.now()
  await eventually(() => existsSync(a.file('sdk-wrote.txt')), 10_000)
  assert.equal(readFileSync(a.file('sdk-wrote.txt'), 'utf8'), 'from the SDK')
  // It came with a full listing (the journal never named it), within the interval and a poll.
  assert.ok(proxy.requests.slice(before).some((r) => isList(r) && r.query.get('prefix') === 'p/'))
  assert.ok(Date.now() - at < 1500 + 3000, `${Date.now() - at} ms`)
  await eventually(
    () => a.changes.some((c) => c.paths.includes('sdk-wrote.txt')),
    2_000,
    () => JSON.stringify(a.changes),
  )
})

test('idle: one HEAD of the journal a poll, no listing until the full check is due; a push elsewhere is one GET of the journal and a listing of the path', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`d${i % 3}/f${i}.txt`, `${i}`])))
  // A two-way watcher made the journal (then stopped); a read-only
  // follower reads it, and writes nothing at all.
  const maker = await agent(t, bucket)
  await maker.watcher.stop()
  const proxy = await startProxy()
  t.after(() => proxy.close())
  const a = await agent(t, bucket, {}, { via: proxy.endpoint, pollMs: 250, direction: 'pull' })
  await new Promise((r) => setTimeout(r, 300))
  const start = proxy.requests.length
  await new Promise((r) => setTimeout(r, 2_500))
  const idle = proxy.requests.slice(start)
  // At most one a poll (10 in 2.5 s, and a little slack for the window's
  // edges); at least a few, though a poll waits for the HEAD's answer
  // before the next 250 ms, which a busy server (moto under the whole
  // suite) stretches: 5 were seen there.
  assert.ok(idle.length >= 3 && idle.length <= 12, `${idle.length} requests in 2.5 s at pollMs 250`)
  for (const r of idle) assert.ok(r.method === 'HEAD' && r.path.endsWith(`/p/${JOURNAL}`), `${r.method} ${r.path}`)

  // Another instance (a plain push(), not watching) changes one file.
  const dir = tmpDir()
  const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await other.pull()
  writeFileSync(path.join(dir, 'd1/f1.txt'), 'changed elsewhere')
  const mark = proxy.requests.length
  assert.equal((await other.push()).uploadedFiles, 1)
  // The event comes when the pull ends (a stop before it would cancel it).
  await eventually(() => a.changes.length > 0, 3_000)
  assert.equal(readFileSync(a.file('d1/f1.txt'), 'utf8'), 'changed elsewhere')
  await a.watcher.stop()
  const after = proxy.requests.slice(mark)
  assert.equal(after.filter((r) => isList(r) && r.query.get('prefix') === 'p/').length, 0, 'a full listing')
  const gets = after.filter((r) => r.method === 'GET' && !isList(r) && !r.path.includes('/.s3ws/'))
  assert.equal(gets.length, 1, `GETs of files: ${after.map((r) => `${r.method} ${r.path}?${r.query}`).join('\n')}`)
  assert.deepEqual(a.changes, [{ paths: ['d1/f1.txt'], deleted: [], conflicts: [] }])
  const writes = [...proxy.requests, ...proxy.probes].filter((r) => !['GET', 'HEAD'].includes(r.method))
  assert.deepEqual(
    writes.map((r) => `${r.method} ${r.path}`),
    [],
    'a pull-only follower wrote to S3',
  )
})

test('the server gone for 10 s: local work is kept, the outage is reported once, and both sides catch up when it is back', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'start.txt': 'start' })
  let down = false
  const proxy = await startProxy({ fault: () => (down ? { status: 503, body: '<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>' } : undefined) })
  t.after(() => proxy.close())
  const a = await agent(t, bucket, {}, { via: proxy.endpoint })
  const b = await agent(t, bucket)
  const errors = []
  a.sync.on('error', (e) => errors.push(e))
  down = true
  writeFileSync(a.file('written-offline.txt'), 'kept')
  writeFileSync(b.file('from-b-meanwhile.txt'), 'b')
  await new Promise((r) => setTimeout(r, 10_000))
  assert.equal(readFileSync(a.file('written-offline.txt'), 'utf8'), 'kept')
  assert.equal(errors.length, 1, errors.map((e) => e.message).join('\n'))
  down = false
  await eventually(
    () => existsSync(b.file('written-offline.txt')) && existsSync(a.file('from-b-meanwhile.txt')),
    45_000,
    () => JSON.stringify({ a: files(a.dir), b: files(b.dir) }),
  )
  assert.deepEqual(files(a.dir), files(b.dir))
  assert.equal(errors.length, 1)
})

test('stop() on one side leaves the other live; direction "push" makes no journal, "pull" pushes nothing; bad options are refused', async (t) => {
  const bucket = await newBucket()
  const a = await agent(t, bucket)
  const b = await agent(t, bucket)
  await a.watcher.stop()
  writeFileSync(a.file('after-a-stopped.txt'), 'stays here')
  // A third instance pushes: b, still live, gets it; a does not.
  const dir = tmpDir()
  const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  writeFileSync(path.join(dir, 'third.txt'), 'third')
  assert.equal((await other.push()).uploadedFiles, 1)
  await eventually(() => existsSync(b.file('third.txt')), 5_000)
  writeFileSync(b.file('from-b.txt'), 'b')
  await eventually(async () => (await workKeys(bucket)).includes('p/from-b.txt'), 5_000)
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(existsSync(a.file('third.txt')), false)
  assert.equal((await workKeys(bucket)).includes('p/after-a-stopped.txt'), false)

  // One-way watches. 'push': no journal is made (and pushes find none to write).
  const pushOnly = await newBucket()
  const p = await agent(t, pushOnly, {}, { direction: 'push' })
  writeFileSync(p.file('one-way.txt'), 'x')
  await eventually(async () => (await listKeys(pushOnly, 'p/')).includes('p/one-way.txt'), 5_000)
  assert.deepEqual(await listKeys(pushOnly, 'p/'), ['p/one-way.txt'])
  // 'pull': a follower that never writes to S3.
  const pullOnly = await newBucket()
  const f = await agent(t, pullOnly, {}, { direction: 'pull' })
  writeFileSync(f.file('local-only.txt'), 'x')
  await putObject(pullOnly, 'p/ignored-by-journal.txt', 'y')
  await new Promise((r) => setTimeout(r, 800))
  // (and made no journal: it only reads one)
  assert.deepEqual(await listKeys(pullOnly, 'p/'), ['p/ignored-by-journal.txt'])
  assert.equal((await f.watcher.stop()).uploadedFiles, 0)

  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  await assert.rejects(sync.watch({ direction: 'sideways' }), { code: 'INVALID_OPTION' })
  await assert.rejects(sync.watch({ pollMs: -1 }), { code: 'INVALID_OPTION' })
  await assert.rejects(sync.watch({ fullCheckMs: 1.5 }), { code: 'INVALID_OPTION' })
})

test('a journal that cannot be read at the start (errors, or no rights): full checks still bring changes, and a push elsewhere still lands', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  // Read-only credentials: every write refused; and the first journal reads fail.
  let journalFailures = 0
  const proxy = await startProxy({
    fault: (r) => {
      if (!['GET', 'HEAD'].includes(r.method)) return { status: 403, body: '<Error><Code>AccessDenied</Code><Message>read-only</Message></Error>' }
      if (r.path.endsWith(`/p/${JOURNAL}`) && journalFailures < 8) {
        journalFailures++
        return { status: 500, body: '<Error><Code>InternalError</Code><Message>flaky</Message></Error>' }
      }
      return undefined
    },
  })
  t.after(() => proxy.close())
  const f = await agent(t, bucket, {}, { via: proxy.endpoint, direction: 'pull', fullCheckMs: 1000 })
  assert.ok(journalFailures > 0)
  assert.match(f.log(), /change journal cannot be read/)
  await putObject(bucket, 'p/by-sdk.txt', 'sdk')
  const b = await agent(t, bucket)
  writeFileSync(b.file('by-watcher.txt'), 'b')
  await eventually(
    () => existsSync(f.file('by-sdk.txt')) && existsSync(f.file('by-watcher.txt')),
    10_000,
    () => `${JSON.stringify(files(f.dir))}\n${f.log()}`,
  )
  assert.doesNotMatch(f.log(), /before follow|checking S3 for remote changes failed/)
})

test('a journal grown too large (long paths, or tampered) is reset by the next push, and watchers stay live', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const a = await agent(t, bucket)
  // 5 MB of valid journal: more than an engine reads.
  const entries = Array.from({ length: 5_000 }, (_, i) => ({ seq: i + 1, by: 'someone', paths: [`${'x'.repeat(1000)}/${i}.txt`] }))
  await putObject(bucket, `p/${JOURNAL}`, JSON.stringify({ seq: 5_000, entries }))
  const dir = tmpDir()
  const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  writeFileSync(path.join(dir, 'after-reset.txt'), 'x')
  assert.equal((await other.push()).uploadedFiles, 1)
  await eventually(
    () => existsSync(a.file('after-reset.txt')),
    5_000,
    () => a.log(),
  )
  const journal = await getObject(bucket, `p/${JOURNAL}`)
  assert.ok(journal.length < 10_000, `${journal.length} bytes`)
})

test("a file a remote pull had to leave (open for writing here) is pulled again when this side's push finds it changed: both versions kept within seconds", async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'log.txt': 'line 1\n' })
  const a = await agent(t, bucket)
  const b = await agent(t, bucket)
  const { openSync, writeSync, closeSync } = await import('node:fs')
  const fd = openSync(a.file('log.txt'), 'a')
  writeFileSync(b.file('log.txt'), 'line 1\nb line 2\n')
  await eventually(
    () => /kept, not replaced|open for writing/.test(a.log()),
    5_000,
    () => a.log(),
  )
  writeSync(fd, 'a line 2\n')
  closeSync(fd)
  const closed = Date.now()
  const versions = (dir) => Object.values(files(dir)).sort()
  const both = ['line 1\na line 2\n', 'line 1\nb line 2\n']
  await eventually(
    () => JSON.stringify(versions(a.dir)) === JSON.stringify(both) && JSON.stringify(versions(b.dir)) === JSON.stringify(both),
    10_000,
    () => `${JSON.stringify({ a: files(a.dir), b: files(b.dir) })}\n${a.log()}`,
  )
  assert.ok(Date.now() - closed < 10_000)
})

test('stop() during a slow remote pull cancels it and pushes at once', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const proxy = await startProxy({ delay: (r) => (r.method === 'GET' && r.path.endsWith('/slow.bin') ? 20_000 : 0) })
  t.after(() => proxy.close())
  const a = await agent(t, bucket, {}, { via: proxy.endpoint })
  // Another instance pushes a file whose GET (through a's proxy) is slow.
  const dir = tmpDir()
  const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  writeFileSync(path.join(dir, 'slow.bin'), Buffer.alloc(1024 * 1024, 1))
  assert.equal((await other.push()).uploadedFiles, 1)
  await eventually(() => proxy.requests.some((r) => r.method === 'GET' && r.path.endsWith('/slow.bin')), 5_000)
  writeFileSync(a.file('last-words.txt'), 'bye')
  const t0 = Date.now()
  const final = await a.watcher.stop()
  assert.ok(Date.now() - t0 < 5_000, `stop took ${Date.now() - t0} ms`)
  assert.equal(final.success, true)
  assert.equal((await getObject(bucket, 'p/last-words.txt')).toString(), 'bye')
})
