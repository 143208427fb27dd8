// The durable sync model against the real server: a persisted sync base,
// three-way pull and push, conditional writes, conflicts kept both ways.
// Each numbered test is one case of the issue that lost work before the base.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import {
  admin,
  md5,
  listingXml,
  endpoint,
  newBucket,
  seed,
  putObject,
  getObject,
  listKeys,
  tmpDir,
  readTree,
  recordingLogger,
  isList,
  inChild,
  STATE_DIR,
  quiet,
  withProxy,
  settle,
  lacks,
} from './helpers.mjs'

const isGet = (r) => r.method === 'GET' && !isList(r)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const write = (dir, rel, body) => {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
  writeFileSync(path.join(dir, rel), body)
}
const read = (dir, rel) => readFileSync(path.join(dir, rel), 'utf8')

function files(n, prefix = 'f') {
  const out = {}
  for (let i = 0; i < n; i++) out[`${prefix}${i}.txt`] = `content ${i}`
  return out
}

test('1. the README background pattern: a file the agent writes during startBackgroundPull() survives and is pushed', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', files(6))
  await withProxy({ delay: (r) => (isGet(r) ? 200 : 0) }, async (proxy) => {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 2, logger: quiet() })
    sync.startBackgroundPull()
    // Before the listing returns (in the scan) and after it (during downloads).
    write(dir, 'out/early.txt', 'early')
    await sleep(300)
    write(dir, 'out/agent-out.txt', 'the agent result')
    await sync.waitForPull()
    assert.equal(read(dir, 'out/early.txt'), 'early')
    assert.equal(read(dir, 'out/agent-out.txt'), 'the agent result')
    const pushed = await sync.push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.equal(pushed.uploadedFiles, 2)
    assert.equal((await getObject(bucket, 'p/out/agent-out.txt')).toString(), 'the agent result')
  })
})

test('2. a file written while pull() runs on a synced workspace is neither deleted nor overwritten', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'shared.txt': 's3 v1' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  await putObject(bucket, 'p/shared.txt', 's3 v2')
  await withProxy({ delay: (r) => (isList(r) ? 300 : 0) }, async (proxy) => {
    const slow = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const running = slow.pull()
    await sleep(50)
    write(dir, 'during.txt', 'written during the pull')
    write(dir, 'shared.txt', 'agent edit during the pull')
    const result = await running
    assert.equal(result.success, true, JSON.stringify(result.errors))
  })
  assert.equal(read(dir, 'during.txt'), 'written during the pull')
  assert.equal(read(dir, 'shared.txt'), 'agent edit during the pull')
})

test('3. an unpushed edit and an unpushed new file survive a pull by a new container while S3 is unchanged', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'notes.md': 'v1', 'other.txt': 'o' })
  const dir = tmpDir()
  const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint }
  assert.equal((await inChild(options, 'pull')).downloadedFiles, 2)
  write(dir, 'notes.md', 'unpushed edit')
  write(dir, 'new.txt', 'unpushed new file')
  const pulled = await inChild(options, 'pull')
  assert.equal(pulled.success, true, JSON.stringify(pulled))
  // other.txt made current (already identical); notes.md kept as the agent left it.
  assert.deepEqual([pulled.downloadedFiles, pulled.transferredFiles, pulled.deletedFiles], [1, 0, 0])
  assert.deepEqual(readTree(dir), { 'notes.md': 'unpushed edit', 'new.txt': 'unpushed new file', 'other.txt': 'o' })
  const pushed = await inChild(options, 'push')
  assert.deepEqual([pushed.success, pushed.uploadedFiles], [true, 2])
  assert.equal((await getObject(bucket, 'p/notes.md')).toString(), 'unpushed edit')
})

test('4. a push from a fresh process after another pulled uploads nothing unchanged and passes on deletions', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', files(60))
  const dir = tmpDir()
  await withProxy({}, async (proxy) => {
    const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint }
    assert.equal((await inChild(options, 'pull')).downloadedFiles, 60)
    const noop = await inChild(options, 'push')
    assert.deepEqual([noop.success, noop.uploadedFiles, noop.deletedFiles], [true, 0, 0])
    assert.equal(proxy.count('PUT'), 0)
    rmSync(path.join(dir, 'f7.txt'))
    write(dir, 'f8.txt', 'edited')
    const pushed = await inChild(options, 'push')
    assert.deepEqual([pushed.success, pushed.uploadedFiles, pushed.deletedFiles], [true, 1, 1])
    assert.equal(proxy.count('PUT'), 1)
    // A single deletion is one DeleteObject (more go in DeleteObjects
    // batches, each key with its ETag: deletes.test.mjs).
    assert.equal(
      proxy.count('POST', (r) => r.query.has('delete')),
      0,
    )
    // Both writes were conditional on the object the base knew (where the
    // server applies conditions; elsewhere a HEAD checks first: stores.test.mjs).
    if (!lacks('conditions')) {
      assert.ok(proxy.requests.find((r) => r.method === 'PUT').headers['if-match'])
      assert.ok(proxy.requests.find((r) => r.method === 'DELETE').headers['if-match'])
    }
  })
  const keys = await listKeys(bucket, 'p/')
  assert.equal(keys.length, 59)
  assert.ok(!keys.includes('p/f7.txt'))
})

test('5. two agents edit one file: the second push is a conflict, not a silent overwrite; its pull keeps both', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'shared.md': 'base' })
  const [dirA, dirB] = [tmpDir('a'), tmpDir('b')]
  const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dirA, endpoint, logger: quiet() })
  const b = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dirB, endpoint, logger: quiet() })
  await a.pull()
  await b.pull()
  write(dirA, 'shared.md', 'edit by A')
  write(dirB, 'shared.md', 'edit by B')
  assert.equal((await a.push()).success, true)
  const pushedB = await b.push()
  assert.equal(pushedB.success, false)
  assert.deepEqual(pushedB.conflicts, ['shared.md'])
  assert.match(pushedB.errors.join('\n'), /shared\.md changed on S3 since the last sync/)
  assert.equal((await getObject(bucket, 'p/shared.md')).toString(), 'edit by A')
  assert.equal(read(dirB, 'shared.md'), 'edit by B') // nothing lost locally either
  // B's pull: S3's version at the name, B's own under a conflict name.
  // (A file stamped within ~20 ms of a pull's call counts as written during
  // it, and is left alone: the edit here is older than that.)
  await sleep(50)
  const pulledB = await b.pull()
  assert.equal(pulledB.success, true)
  assert.deepEqual(pulledB.conflicts, ['shared.md'])
  const tree = readTree(dirB)
  assert.equal(tree['shared.md'], 'edit by A')
  const copies = Object.keys(tree).filter((n) => /^shared\.conflict-\d{8}-\d{6}-[0-9a-f]{4}\.md$/.test(n))
  assert.equal(copies.length, 1, Object.keys(tree).join(' '))
  assert.equal(tree[copies[0]], 'edit by B')
  // The next push persists the conflict copy, so both versions are on S3.
  const again = await b.push()
  assert.deepEqual([again.success, again.uploadedFiles], [true, 1])
  assert.deepEqual(await listKeys(bucket, 'p/'), [`p/${copies[0]}`, 'p/shared.md'].sort())
})

test("5b. conflictPolicy: 'overwrite' restores upstream's last writer wins", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'shared.md': 'base' })
  const [dirA, dirB] = [tmpDir('a'), tmpDir('b')]
  const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dirA, endpoint, logger: quiet() })
  const b = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dirB, endpoint, conflictPolicy: 'overwrite', logger: quiet() })
  await a.pull()
  await b.pull()
  write(dirA, 'shared.md', 'edit by A')
  write(dirB, 'shared.md', 'edit by B')
  await a.push()
  const pushedB = await b.push()
  assert.deepEqual([pushedB.success, pushedB.uploadedFiles], [true, 1])
  assert.equal((await getObject(bucket, 'p/shared.md')).toString(), 'edit by B')
  assert.throws(
    () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dirB, conflictPolicy: 'theirs' }),
    (e) => e.code === 'INVALID_OPTION',
  )
})

test('6. a parent agent and its sub-agent push one directory concurrently: both succeed', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', files(5))
  const dir = tmpDir()
  const parent = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await parent.pull()
  const sub = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  for (let i = 0; i < 20; i++) write(dir, `parent/${i}.txt`, `p${i}`)
  for (let i = 0; i < 20; i++) write(dir, `sub/${i}.txt`, `s${i}`)
  const [p, s] = await Promise.all([parent.push(), sub.push()])
  assert.equal(p.success, true, JSON.stringify(p.errors))
  assert.equal(s.success, true, JSON.stringify(s.errors))
  assert.equal(p.uploadedFiles + s.uploadedFiles, 40) // each file once, by whichever went first
  assert.equal((await listKeys(bucket, 'p/')).length, 45)
  // The same from two processes.
  write(dir, 'parent/x.txt', 'px')
  const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint }
  const both = await Promise.all([inChild(options, 'push'), inChild(options, 'push')])
  assert.ok(
    both.every((r) => r.success),
    JSON.stringify(both),
  )
  assert.equal(both[0].uploadedFiles + both[1].uploadedFiles, 1)
})

test("7. nested workspaces: the parent never uploads the nested one's state, and the nested pull keeps working", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'u/', { 'top.txt': 't', 'dev2/inner.txt': 'i' })
  const root = tmpDir('nested')
  const parent = new S3WorkspaceSync({ bucket, prefix: 'u/', workspaceDir: root, endpoint, logger: quiet() })
  const nested = new S3WorkspaceSync({ bucket, prefix: 'u/dev2', workspaceDir: path.join(root, 'dev2'), endpoint, logger: quiet() })
  await parent.pull()
  assert.equal((await nested.pull()).success, true)
  assert.ok(existsSync(path.join(root, 'dev2', STATE_DIR)))
  write(root, 'dev2/made-by-dev2.txt', 'x')
  const pushed = await parent.push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  const keys = await listKeys(bucket, 'u/')
  assert.ok(
    keys.every((k) => !k.includes(STATE_DIR)),
    keys.join(' '),
  )
  assert.ok(keys.includes('u/dev2/made-by-dev2.txt'))
  // The parent's pull leaves the nested state alone; the nested pull still works.
  assert.equal((await parent.pull()).success, true)
  assert.ok(readdirSync(path.join(root, 'dev2', STATE_DIR)).some((n) => n.startsWith('base-')))
  const again = await nested.pull()
  assert.equal(again.success, true, JSON.stringify(again.errors))
  assert.equal(read(root, 'dev2/made-by-dev2.txt'), 'x')
})

test('8. an emptied workspace or an empty mount point deletes nothing on S3', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', files(30))
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  // Emptied by mistake: every file gone, the directory (and its state) kept.
  for (const name of readdirSync(dir)) if (name !== STATE_DIR) rmSync(path.join(dir, name), { recursive: true })
  const pushed = await sync.push()
  assert.equal(pushed.success, false)
  assert.equal(pushed.deletedFiles, 0)
  assert.match(pushed.errors.join('\n'), /would delete 30 of 30 synced files.*maxDeletePercent/)
  assert.equal((await listKeys(bucket, 'p/')).length, 30)
  // An unmounted volume: an empty directory, no state at all.
  const mountPoint = tmpDir('mnt')
  const fresh = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: mountPoint, endpoint, logger: quiet() }).push()
  assert.deepEqual([fresh.success, fresh.deletedFiles], [true, 0])
  assert.equal((await listKeys(bucket, 'p/')).length, 30)
  // Intended: the option allows it.
  const allowed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, maxDeletePercent: 100, logger: quiet() }).push()
  assert.deepEqual([allowed.success, allowed.deletedFiles], [true, 30])
})

test('9. after a failed background pull, push() does not overwrite newer objects with stale local files', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'report.md': 'v1', 'stale-edit.md': 'v1' })
  const dir = tmpDir()
  const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint }
  await inChild(options, 'pull')
  // Another agent writes newer versions while this workspace sleeps.
  await putObject(bucket, 'p/report.md', 'v2 by another agent')
  await putObject(bucket, 'p/stale-edit.md', 'v2 by another agent')
  write(dir, 'stale-edit.md', 'local edit on v1')
  await withProxy({ fault: (r) => (isList(r) ? { status: 503, body: '<Error><Code>SlowDown</Code></Error>' } : undefined) }, async (proxy) => {
    const { logger, calls } = recordingLogger()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger })
    sync.startBackgroundPull()
    await sync.waitForPull()
    assert.ok(calls.some((c) => c.level === 'error' && /Background pull failed/.test(c.message)))
    const pushed = await sync.push()
    assert.equal(pushed.uploadedFiles, 0)
    assert.deepEqual(pushed.conflicts, ['stale-edit.md'])
  })
  assert.equal((await getObject(bucket, 'p/report.md')).toString(), 'v2 by another agent')
  assert.equal((await getObject(bucket, 'p/stale-edit.md')).toString(), 'v2 by another agent')
  assert.equal(read(dir, 'stale-edit.md'), 'local edit on v1')
})

test('10. a file whose key would pass 1,024 bytes is reported by push and never deleted by the next pull', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  const long = `${Array.from({ length: 6 }, (_, i) => `${i}`.repeat(200)).join('/')}/only-copy.txt`
  write(dir, long, 'the only copy')
  const pushed = await sync.push()
  assert.equal(pushed.success, false)
  assert.match(pushed.errors.join('\n'), /over S3's limit of 1024/)
  const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).pull()
  assert.equal(pulled.deletedFiles, 0)
  assert.equal(read(dir, long), 'the only copy')
})

test('11. one unsafe key does not stop deletions elsewhere, so deleted files never come back', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'keep.txt': 'k', 'removed-by-other.txt': 'r' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  // Another agent deletes a file; the listing also holds one unsafe key.
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/removed-by-other.txt' }))
  const etag = md5(Buffer.from('k'))
  const listing = listingXml({ bucket, prefix: 'p/', objects: [{ key: 'p/keep.txt', etag, size: 1 }, { key: 'p/../evil.txt' }] })
  await withProxy({ fault: (r) => (isList(r) ? { status: 200, body: listing } : undefined) }, async (proxy) => {
    const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(pulled.success, false) // the unsafe key is reported
    assert.equal(pulled.deletedFiles, 1)
  })
  assert.equal(existsSync(path.join(dir, 'removed-by-other.txt')), false)
  const pushed = await sync.push()
  assert.equal(pushed.uploadedFiles, 0)
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/keep.txt'])
})

// Case 12 (a multipart object from another tool, ETag `…-2`, no stored MD5,
// known unchanged by a fresh instance without a GET) is in large.test.mjs.

test('a push killed mid-way is recovered by the next push: no conflict with its own uploads, nothing lost', { skip: lacks('atomic-put') }, async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const body = {}
  for (let i = 0; i < 30; i++) body[`k${i}.txt`] = `kill ${i}`
  for (const [rel, b] of Object.entries(body)) write(dir, rel, b)
  const options = { bucket, prefix: 'p/', workspaceDir: dir, uploadConcurrency: 2 }
  // The server stores each PUT at once; its answer is held, so the killed
  // process never learns of some uploads that did happen.
  await withProxy({ hold: (r) => (r.method === 'PUT' ? 150 : 0) }, async (proxy) => {
    // Killed once a few PUTs went out (not at a fixed time: a loaded
    // machine may not have started uploading yet).
    const killed = await inChild({ ...options, endpoint: proxy.endpoint }, 'push', {
      onStart: (child) => {
        const timer = setInterval(() => {
          if (proxy.count('PUT') < 6) return
          clearInterval(timer)
          child.kill('SIGKILL')
        }, 5)
      },
    })
    assert.equal(killed.killed, 'SIGKILL')
  })
  const landed = (await listKeys(bucket, 'p/')).length
  assert.ok(landed > 0 && landed < 30, `the kill should land mid-push (${landed} of 30 landed)`)
  const recovered = await new S3WorkspaceSync({ ...options, endpoint, logger: quiet() }).push()
  assert.equal(recovered.success, true, JSON.stringify(recovered.errors))
  assert.equal(recovered.conflicts, undefined)
  assert.equal((await listKeys(bucket, 'p/')).length, 30)
  for (const [rel, b] of Object.entries(body)) assert.equal((await getObject(bucket, `p/${rel}`)).toString(), b)
  const again = await new S3WorkspaceSync({ ...options, endpoint, logger: quiet() }).push()
  assert.deepEqual([again.success, again.uploadedFiles], [true, 0])
})

test("stateDir keeps the sync base outside the workspace, which then holds only the user's files", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const dir = tmpDir()
  const stateDir = path.join(tmpDir('state'), 'nested', 'state')
  const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint, stateDir, logger: quiet() }
  await new S3WorkspaceSync(options).pull()
  assert.deepEqual(readdirSync(dir).sort(), ['a.txt'])
  assert.ok(readdirSync(stateDir).some((n) => n.startsWith('base-')))
  write(dir, 'a.txt', 'edited')
  // A fresh instance with the same stateDir knows the base: a conditional update.
  const pushed = await new S3WorkspaceSync(options).push()
  assert.deepEqual([pushed.success, pushed.uploadedFiles], [true, 1])
})

test('without a base, push adopts identical objects and reports differing ones as conflicts', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'same.txt': 'same', 'differs.txt': 'on S3' })
  const dir = tmpDir()
  write(dir, 'same.txt', 'same')
  write(dir, 'differs.txt', 'here')
  write(dir, 'new.txt', 'new')
  await withProxy({}, async (proxy) => {
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).push()
    assert.equal(pushed.success, false)
    assert.equal(pushed.uploadedFiles, 1)
    assert.deepEqual(pushed.conflicts, ['differs.txt'])
    assert.equal(proxy.count('PUT'), 1)
    if (!lacks('conditions')) assert.equal(proxy.requests.find((r) => r.method === 'PUT').headers['if-none-match'], '*')
  })
  assert.equal((await getObject(bucket, 'p/differs.txt')).toString(), 'on S3')
})

test('an object deleted on S3 while the file was edited here is created again by the push; deleted on both sides is nothing to do', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'edited.txt': 'v1', 'both-gone.txt': 'x', 'other.txt': 'o' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  await settle()
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/edited.txt' }))
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/both-gone.txt' }))
  writeFileSync(path.join(dir, 'edited.txt'), 'v2, written after the object was deleted elsewhere')
  rmSync(path.join(dir, 'both-gone.txt'))
  await settle()
  const planned = await sync.push({ dryRun: true })
  assert.deepEqual([planned.plan.upload, planned.plan.deleteRemote, planned.plan.conflicts], [['edited.txt'], [], []])
  const pushed = await sync.push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.deepEqual([pushed.uploadedFiles, pushed.deletedFiles], [1, 0])
  assert.equal((await getObject(bucket, 'p/edited.txt')).toString(), 'v2, written after the object was deleted elsewhere')
  // And the next push has nothing left to do.
  const again = await sync.push()
  assert.deepEqual([again.success, again.uploadedFiles, again.deletedFiles, again.errors], [true, 0, 0, undefined])
})

test('a push aborted after S3 stored its write, then the file edited again: the next push replaces its own write, no conflict', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'x.txt'), 'x0')
  await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  const controller = new AbortController()
  let fired = false
  await withProxy(
    {
      // The server stores the PUT; the push is stopped before it hears so.
      hold: (r) => {
        if (fired || r.method !== 'PUT' || !r.path.endsWith('/p/x.txt')) return 0
        fired = true
        setTimeout(() => controller.abort(), 20)
        return 500
      },
    },
    async (proxy) => {
      const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
      writeFileSync(path.join(dir, 'x.txt'), 'x1')
      await assert.rejects(a.push({ signal: controller.signal }), { name: 'AbortError' })
      assert.equal((await getObject(bucket, 'p/x.txt')).toString(), 'x1')
      writeFileSync(path.join(dir, 'x.txt'), 'x2, edited again')
      const r = await a.push()
      assert.equal(r.success, true, JSON.stringify(r))
      assert.equal(r.uploadedFiles, 1)
      assert.equal((await getObject(bucket, 'p/x.txt')).toString(), 'x2, edited again')
      await a.close()
    },
  )
  // Another agent's write is still a conflict.
  await putObject(bucket, 'p/x.txt', 'another agent')
  writeFileSync(path.join(dir, 'x.txt'), 'x3')
  const r = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  assert.deepEqual(r.conflicts, ['x.txt'])
})
