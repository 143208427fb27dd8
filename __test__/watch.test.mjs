// watch(): a workspace kept pushed as it changes, against the real server.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, quiet, getObject, listKeys, lacks, withProxy, isList } from './helpers.mjs'

/** Resolves when `check()` is true, polling (a check that throws counts as false); rejects after `ms`. */
async function eventually(check, ms) {
  const deadline = Date.now() + ms
  while (
    !(await Promise.resolve()
      .then(check)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return Date.now()
}

/** Counts the pushes running at once (the most ever seen). */
function countOverlap(sync) {
  const seen = { running: 0, most: 0 }
  const push = sync.push.bind(sync)
  sync.push = async (...args) => {
    seen.running++
    seen.most = Math.max(seen.most, seen.running)
    try {
      return await push(...args)
    } finally {
      seen.running--
    }
  }
  return seen
}

test('watch: a file written is on S3 within debounce + 2 s; a burst is a few pushes; stop() pushes what is left', { skip: lacks('read-during-write') }, async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'start.txt': 'from S3' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const overlap = countOverlap(sync)
  const debounceMs = 300
  const watcher = await sync.watch({ debounceMs })
  // A failed check must not leave the watcher (and the test file) running.
  t.after(() => watcher.stop())
  assert.equal((await import('node:fs')).readFileSync(path.join(dir, 'start.txt'), 'utf8'), 'from S3', 'watch pulls first')

  const written = Date.now()
  writeFileSync(path.join(dir, 'note.md'), 'first note')
  const landed = await eventually(async () => (await listKeys(bucket, 'p/')).includes('p/note.md'), debounceMs + 2000)
  assert.ok(landed - written <= debounceMs + 2000)

  // 1,000 files in a burst (some in new directories): a few pushes, not hundreds.
  const pushesBefore = watcher.pushes
  for (let d = 0; d < 10; d++) {
    mkdirSync(path.join(dir, `batch${d}`))
    for (let i = 0; i < 100; i++) writeFileSync(path.join(dir, `batch${d}`, `f${i}.txt`), `${d}/${i}`)
  }
  // The bound is for a slow store under the whole suite's load (moto); the
  // push count below is the claim.
  // (and the change journal: watch is two-way by default)
  await eventually(async () => (await listKeys(bucket, 'p/')).length === 1003, 60_000)
  assert.ok(watcher.pushes - pushesBefore <= 4, `${watcher.pushes - pushesBefore} pushes for the burst`)

  // Written just before stop(): the final push sends it.
  writeFileSync(path.join(dir, 'last-words.txt'), 'bye')
  const final = await watcher.stop()
  assert.equal(final.success, true)
  assert.equal((await getObject(bucket, 'p/last-words.txt')).toString(), 'bye')
  assert.equal(overlap.most, 1, 'two pushes ran at once')
  // Stopped: later writes are not pushed.
  const pushes = watcher.pushes
  writeFileSync(path.join(dir, 'after.txt'), 'x')
  await new Promise((r) => setTimeout(r, debounceMs + 300))
  assert.equal(watcher.pushes, pushes)
  assert.equal(await watcher.stop(), final, 'stop() is idempotent')
})

test('watch: an agent that never stops writing still has its work pushed, within five debounce windows', async (t) => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const debounceMs = 400
  const watcher = await sync.watch({ debounceMs, direction: 'push' })
  t.after(() => watcher.stop())
  // The push of what was pending when watching began, done before the agent starts.
  await new Promise((r) => setTimeout(r, 1000))
  assert.equal(watcher.pushes, 1)
  // A note every 100 ms until the first is on S3: never a quiet debounce window.
  const writing = new AbortController()
  let notes = 0
  const agent = (async () => {
    while (!writing.signal.aborted) {
      writeFileSync(path.join(dir, `note-${notes++}.md`), `note ${notes}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  const started = Date.now()
  try {
    // Five windows (2 s) and the push's own time: the first note is on S3
    // while the agent is still writing.
    const landed = await eventually(async () => (await listKeys(bucket, 'p/')).includes('p/note-0.md'), 4500)
    assert.ok(landed - started <= 4500)
  } finally {
    writing.abort()
    await agent
  }
  const final = await watcher.stop()
  assert.equal(final.success, true)
  assert.equal((await listKeys(bucket, 'p/')).filter((k) => k.includes('/note-')).length, notes)
})

test('watch: stop() during a push resolves with what that push and the final one sent together', async (t) => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const held = (r) => r.method === 'PUT' && r.path.endsWith('/p/held.txt')
  await withProxy({ hold: (r) => (held(r) ? 1500 : 0) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const onPush = []
    const watcher = await sync.watch({ debounceMs: 100, direction: 'push', onPush: (r) => onPush.push(r) })
    t.after(() => watcher.stop())
    await eventually(() => watcher.pushes === 1 && onPush.length === 1, 5000)
    writeFileSync(path.join(dir, 'held.txt'), 'in flight at the stop')
    await eventually(() => proxy.count('PUT', held) === 1, 5000)
    writeFileSync(path.join(dir, 'late.txt'), 'written while it was in flight')
    const final = await watcher.stop()
    assert.equal(final.success, true, JSON.stringify(final.errors))
    // The push in flight took held.txt; the final one late.txt.
    assert.equal(onPush.length, 3)
    assert.deepEqual(
      onPush.slice(1).map((r) => r.uploadedFiles),
      [1, 1],
    )
    assert.equal(final.uploadedFiles, 2)
    assert.equal(final.transferredFiles, 2)
    assert.equal(final.unchangedFiles, 0)
    assert.equal(final.bytesTransferred, onPush[1].bytesTransferred + onPush[2].bytesTransferred)
  })
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/held.txt', 'p/late.txt'])
})

test('watch: stop() during a push that fails: the final push sends the file again, and the stop says it is pushed', async (t) => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const held = (r) => r.method === 'PUT' && r.path.endsWith('/p/held.txt')
  let refused = 0
  const boom = { status: 500, body: '<?xml version="1.0"?><Error><Code>InternalError</Code><Message>boom</Message></Error>' }
  // Every attempt of the first push (the SDK makes 4) is refused, slowly.
  const fault = (r) => (held(r) && refused++ < 4 ? boom : undefined)
  await withProxy({ fault, delay: (r) => (held(r) && refused < 4 ? 300 : 0) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const onPush = []
    const watcher = await sync.watch({ debounceMs: 100, direction: 'push', onPush: (r) => onPush.push(r) })
    t.after(() => watcher.stop())
    await eventually(() => onPush.length === 1, 5000)
    writeFileSync(path.join(dir, 'held.txt'), 'refused, then sent')
    await eventually(() => proxy.count('PUT', held) >= 1, 5000)
    const final = await watcher.stop()
    assert.equal(onPush[1].success, false)
    assert.equal(final.success, true, JSON.stringify(final.errors))
    assert.equal(final.errors, undefined)
    assert.equal(final.uploadedFiles, 1)
  })
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/held.txt'])
})

test("watch: agents stopping one after the other with one file changed by each: both versions end on S3, the second's under a conflict name", async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'shared.txt': 'base' })
  // No push nor remote check but the first and the final ones: both final
  // pushes find shared.txt changed since their base, the second finds it
  // changed on S3 too. (One after the other: SeaweedFS and moto check a
  // condition before they store, so two PUTs at the same instant can both
  // pass it; see README, S3 servers.)
  const quietWatch = { debounceMs: 60_000, pollMs: 60_000, fullCheckMs: 600_000 }
  const agents = []
  for (const name of ['a', 'b']) {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
    const onPush = []
    const remote = []
    sync.on('remote-change', (e) => remote.push(e))
    const watcher = await sync.watch({ ...quietWatch, onPush: (r) => onPush.push(r) })
    t.after(() => watcher.stop())
    // The push a watch starts with has run: the stop's is the one to take the file.
    await eventually(() => onPush.length === 1, 5000)
    writeFileSync(path.join(dir, 'shared.txt'), `from ${name}`)
    agents.push({ name, dir, watcher, onPush, remote })
  }
  const [a, b] = agents
  const first = await a.watcher.stop()
  assert.equal(first.success, true, JSON.stringify(first.errorDetails))
  assert.equal(first.conflicts, undefined)
  const second = await b.watcher.stop()
  // Before: success false, CONFLICT, and "from b" on b's disk alone.
  assert.equal(second.success, true, JSON.stringify(second.errorDetails))
  assert.equal(second.errors, undefined)
  assert.deepEqual(second.conflicts, ['shared.txt'])
  assert.equal(second.conflictCopies?.length, 1, JSON.stringify(second))
  const { path: at, copy } = second.conflictCopies[0]
  assert.equal(at, 'shared.txt')
  assert.match(copy, /^shared\.conflict-\d{8}-\d{6}-\w+\.txt$/)
  // Its pushes: the refused one, then the copy's.
  assert.deepEqual(
    b.onPush.slice(1).map((r) => [r.success, r.uploadedFiles]),
    [
      [false, 0],
      [true, 1],
    ],
  )
  assert.equal(second.uploadedFiles, 1)
  assert.deepEqual(b.remote, [{ paths: ['shared.txt'], deleted: [], conflicts: ['shared.txt'] }])
  // Both versions on S3, and on b's disk.
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/.s3ws/changes.json', 'p/' + copy, 'p/shared.txt'])
  assert.equal((await getObject(bucket, 'p/shared.txt')).toString(), 'from a')
  assert.equal((await getObject(bucket, 'p/' + copy)).toString(), 'from b')
  assert.equal(readFileSync(path.join(b.dir, copy), 'utf8'), 'from b')
  assert.equal(readFileSync(path.join(b.dir, 'shared.txt'), 'utf8'), 'from a')
})

test('watch: aborting the signal stops it after a final push; bad options are refused', async (t) => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await assert.rejects(sync.watch({ debounceMs: -1 }), { code: 'INVALID_OPTION' })
  const controller = new AbortController()
  const pushed = []
  const watcher = await sync.watch({ debounceMs: 60_000, signal: controller.signal, onPush: (r) => pushed.push(r) })
  t.after(() => watcher.stop())
  writeFileSync(path.join(dir, 'pending.txt'), 'not yet pushed')
  controller.abort()
  const final = await watcher.stop()
  // The first push (right after the pull) or the final one took it: the
  // stop's result says so either way.
  assert.equal(final.success, true)
  assert.equal(final.uploadedFiles, 1)
  assert.equal(
    pushed.reduce((n, r) => n + r.uploadedFiles, 0),
    1,
  )
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/.s3ws/changes.json', 'p/pending.txt'])
})

test('watch: a stop during its first pull (a container stopped while starting) still pushes what the agent wrote', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, `from S3 ${i}`])))
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'agent.md'), 'written while restoring')
  await withProxy({ delay: (r) => (r.method === 'GET' && !isList(r) ? 100 : 0) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 1, logger: quiet() })
    const controller = new AbortController()
    const pushed = []
    const watching = sync.watch({ signal: controller.signal, onPush: (r) => pushed.push(r) })
    // A file's GET (not the change journal's): the pull is under way.
    const fileGet = (r) => !isList(r) && !r.path.includes('/.s3ws/')
    await eventually(() => proxy.count('GET', fileGet) > 0, 10_000)
    controller.abort()
    const final = await (await watching).stop()
    assert.equal(final.success, true, JSON.stringify(final.errors))
    assert.equal(final.uploadedFiles, 1)
    assert.deepEqual(pushed, [final])
    // The pull was cut short: nothing it had not fetched was deleted anywhere.
    assert.ok(proxy.count('GET', fileGet) < 20)
  })
  assert.equal((await getObject(bucket, 'p/agent.md')).toString(), 'written while restoring')
  assert.equal((await listKeys(bucket, 'p/')).filter((k) => !k.includes('/.s3ws/')).length, 21)
})

test('watch: an edit to a file another instance just changed (replaced on this disk by a rename) is pushed within seconds; so are files in a directory made again', async (t) => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'dir/f.txt': 'v0' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const watcher = await sync.watch({ debounceMs: 200, pollMs: 300 })
  t.after(() => watcher.stop())
  const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  await other.pull()
  writeFileSync(path.join(other.getWorkspacePath(), 'dir/f.txt'), 'from the other instance')
  await other.push()
  const { readFileSync, rmSync } = await import('node:fs')
  await eventually(() => readFileSync(path.join(dir, 'dir/f.txt'), 'utf8') === 'from the other instance', 10_000)
  await new Promise((r) => setTimeout(r, 500))
  writeFileSync(path.join(dir, 'dir/f.txt'), 'the agent edits it')
  const edited = Date.now()
  await eventually(async () => (await getObject(bucket, 'p/dir/f.txt')).toString() === 'the agent edits it', 15_000)
  // Well before the 30 s rescan that used to be the only way it went.
  assert.ok(Date.now() - edited < 15_000)
  // A directory deleted and made again is watched again.
  rmSync(path.join(dir, 'dir'), { recursive: true })
  await eventually(async () => !(await listKeys(bucket, 'p/')).includes('p/dir/f.txt'), 15_000)
  mkdirSync(path.join(dir, 'dir'))
  await new Promise((r) => setTimeout(r, 300))
  writeFileSync(path.join(dir, 'dir/g.txt'), 'in the new directory')
  await eventually(async () => (await listKeys(bucket, 'p/')).includes('p/dir/g.txt'), 15_000)
})
