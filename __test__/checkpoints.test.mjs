// Checkpoints and undo on a versioned bucket, against the real server:
// every push a checkpoint, restore (whole, one directory, by time, undone),
// diff, concurrent agents, local work kept, cancellation, a fresh process.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { PutBucketVersioningCommand } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import { admin, endpoint, getObject, lacks, listKeys, newBucket, putObject, quiet, readTree, startProxy, tmpDir } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

async function versionedBucket() {
  const bucket = await newBucket()
  await admin.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }))
  return bucket
}

/** The workspace's files (the engine's own state left out). */
const files = (dir) => Object.fromEntries(Object.entries(readTree(dir)).filter(([rel]) => !rel.startsWith('.s3ws/')))

/** What S3 holds under `p/`, path → content (the engine's keys left out). */
async function s3Files(bucket) {
  const keys = (await listKeys(bucket, 'p/')).filter((k) => !k.startsWith('p/.s3ws/'))
  const out = {}
  for (const k of keys) out[k.slice(2)] = (await getObject(bucket, k)).toString()
  return out
}

function agent(bucket, options = {}) {
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet(), ...options })
  return { dir, sync, write: (rel, body) => writeAt(dir, rel, body), remove: (rel) => rmSync(path.join(dir, rel), { recursive: true }) }
}

function writeAt(dir, rel, body) {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
  writeFileSync(path.join(dir, rel), body)
}

/** Three turns of an agent; the state each push left, as { checkpoint, files }. */
async function threeTurns(a) {
  const turns = []
  a.write('README.md', 'v1')
  a.write('src/a.js', 'a1')
  a.write('src/b.js', 'b1')
  a.write('docs/x.md', 'x1')
  let r = await a.sync.push()
  turns.push({ checkpoint: r.checkpoint, files: files(a.dir) })
  a.write('src/a.js', 'a2')
  a.remove('docs')
  a.write('src/c.js', 'c2')
  r = await a.sync.push()
  turns.push({ checkpoint: r.checkpoint, files: files(a.dir) })
  a.write('README.md', 'v3')
  a.remove('src/b.js')
  a.write('notes.txt', 'n3')
  r = await a.sync.push()
  turns.push({ checkpoint: r.checkpoint, files: files(a.dir) })
  return turns
}

test('three turns: restore to the first, undo the restore, diff each pair, list them', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const turns = await threeTurns(a)
  for (const t of turns) assert.match(t.checkpoint, /^\d+$/)
  assert.equal(new Set(turns.map((t) => t.checkpoint)).size, 3)
  // A push that changes nothing names the current checkpoint.
  assert.equal((await a.sync.push()).checkpoint, turns[2].checkpoint)

  const listed = await a.sync.listCheckpoints()
  assert.deepEqual(
    listed.slice(0, 3).map((c) => c.id),
    [turns[2], turns[1], turns[0]].map((t) => t.checkpoint),
  )
  assert.deepEqual(
    listed.slice(0, 3).map((c) => [c.files, c.changed]),
    [
      [4, 3],
      [4, 3],
      [4, 4],
    ],
  )
  assert.ok(listed[0].time instanceof Date && listed[0].time <= new Date())
  assert.equal(
    listed[0].bytes,
    Object.values(turns[2].files).reduce((n, b) => n + b.length, 0),
  )
  assert.deepEqual(
    (await a.sync.listCheckpoints({ limit: 1, before: turns[2].checkpoint })).map((c) => c.id),
    [turns[1].checkpoint],
  )

  assert.deepEqual(await a.sync.diff({ checkpoint: turns[0].checkpoint }, { checkpoint: turns[1].checkpoint }), {
    added: ['src/c.js'],
    modified: ['src/a.js'],
    deleted: ['docs/x.md'],
  })
  assert.deepEqual(await a.sync.diff({ checkpoint: turns[1].checkpoint }, { checkpoint: turns[2].checkpoint }), {
    added: ['notes.txt'],
    modified: ['README.md'],
    deleted: ['src/b.js'],
  })
  assert.deepEqual(await a.sync.diff({ checkpoint: turns[0].checkpoint }, { checkpoint: turns[2].checkpoint }), {
    added: ['notes.txt', 'src/c.js'],
    modified: ['README.md', 'src/a.js'],
    deleted: ['docs/x.md', 'src/b.js'],
  })
  // Against the workspace: nothing since the last push, then a local edit.
  assert.deepEqual(await a.sync.diff({ checkpoint: turns[2].checkpoint }), { added: [], modified: [], deleted: [] })
  a.write('src/a.js', 'local edit')
  assert.deepEqual(await a.sync.diff({ checkpoint: turns[2].checkpoint }), { added: [], modified: ['src/a.js'], deleted: [] })
  a.write('src/a.js', 'a2')

  // A dry run plans, changes nothing.
  const plan = await a.sync.restore({ checkpoint: turns[0].checkpoint }, { dryRun: true })
  assert.deepEqual(plan.plan, { restore: ['README.md', 'docs/x.md', 'src/a.js', 'src/b.js'], delete: ['notes.txt', 'src/c.js'], conflicts: [] })
  assert.deepEqual(await s3Files(bucket), turns[2].files)

  const events = []
  a.sync.on('progress', (p) => events.push(p.phase))
  const restored = await a.sync.restore({ checkpoint: turns[0].checkpoint })
  assert.equal(restored.success, true, JSON.stringify(restored))
  assert.deepEqual([restored.restoredFiles, restored.deletedFiles, restored.unchangedFiles], [4, 2, 0])
  assert.ok(events.includes('restore'))
  assert.deepEqual(await s3Files(bucket), turns[0].files)
  assert.deepEqual(files(a.dir), turns[0].files)
  assert.ok(Number(restored.checkpoint) > Number(turns[2].checkpoint))
  // The restore is a checkpoint: restoring the one before undoes it.
  const undone = await a.sync.restore({ checkpoint: turns[2].checkpoint })
  assert.equal(undone.success, true, JSON.stringify(undone))
  assert.deepEqual(await s3Files(bucket), turns[2].files)
  assert.deepEqual(files(a.dir), turns[2].files)
  assert.deepEqual(await a.sync.diff({ checkpoint: restored.checkpoint }, { checkpoint: undone.checkpoint }), {
    added: ['notes.txt', 'src/c.js'],
    modified: ['README.md', 'src/a.js'],
    deleted: ['docs/x.md', 'src/b.js'],
  })
  // And the next push has nothing to send.
  const after = await a.sync.push()
  assert.equal(after.uploadedFiles, 0)
  assert.equal(after.checkpoint, undone.checkpoint)
})

test('a restore of one directory, and one by time', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const turns = await threeTurns(a)
  const onlySrc = await a.sync.restore({ checkpoint: turns[0].checkpoint }, { paths: ['src'] })
  assert.equal(onlySrc.success, true, JSON.stringify(onlySrc))
  const expected = { ...turns[2].files, 'src/a.js': 'a1', 'src/b.js': 'b1' }
  delete expected['src/c.js']
  assert.deepEqual(await s3Files(bucket), expected)
  assert.deepEqual(files(a.dir), expected)

  // By time: the newest checkpoint at or before that moment.
  const second = (await a.sync.listCheckpoints({ before: onlySrc.checkpoint })).find((c) => c.id === turns[1].checkpoint)
  const byTime = await a.sync.restore({ at: new Date(second.time.getTime() + 1) })
  assert.equal(byTime.success, true, JSON.stringify(byTime))
  assert.deepEqual(await s3Files(bucket), turns[1].files)
  assert.deepEqual(files(a.dir), turns[1].files)
  await assert.rejects(a.sync.restore({ at: new Date(0) }), { code: 'CHECKPOINT_NOT_FOUND' })
  await assert.rejects(a.sync.restore({ checkpoint: '999999' }), { code: 'CHECKPOINT_NOT_FOUND' })
  await assert.rejects(a.sync.restore({ checkpoint: 1 }), { code: 'INVALID_OPTION' })
})

test('two agents pushing at once: each checkpoint restores exactly the state it names', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const b = agent(bucket)
  a.write('shared.txt', 'base')
  await a.sync.push()
  await b.sync.pull()
  for (let i = 0; i < 20; i++) {
    a.write(`a/${i}.txt`, `a${i}`)
    b.write(`b/${i}.txt`, `b${i}`)
  }
  const [ra, rb] = await Promise.all([a.sync.push(), b.sync.push()])
  assert.notEqual(ra.checkpoint, rb.checkpoint)
  const [first, second] = [ra, rb].sort((x, y) => Number(x.checkpoint) - Number(y.checkpoint))
  const firstIsA = first === ra
  // The first checkpoint holds its own push whole and none of the other's.
  const own = (who) => Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`${who}/${i}.txt`, `${who}${i}`]))
  const atFirst = { 'shared.txt': 'base', ...own(firstIsA ? 'a' : 'b') }
  const atSecond = { 'shared.txt': 'base', ...own('a'), ...own('b') }
  const c = agent(bucket)
  const r1 = await c.sync.restore({ checkpoint: first.checkpoint })
  assert.equal(r1.success, true, JSON.stringify(r1))
  assert.deepEqual(await s3Files(bucket), atFirst)
  assert.deepEqual(files(c.dir), atFirst)
  const r2 = await c.sync.restore({ checkpoint: second.checkpoint })
  assert.equal(r2.success, true, JSON.stringify(r2))
  assert.deepEqual(await s3Files(bucket), atSecond)
  assert.deepEqual(files(c.dir), atSecond)
})

test('local work not pushed is kept as conflict copies; another agent’s change is a conflict', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const turns = await threeTurns(a)
  a.write('README.md', 'unpushed edit')
  a.write('new-local.txt', 'unpushed new file')
  // Another agent changes src/a.js on S3 after this one synced it.
  const b = agent(bucket)
  await b.sync.pull()
  b.write('src/a.js', 'b changed it')
  await b.sync.push()

  const r = await a.sync.restore({ checkpoint: turns[0].checkpoint })
  assert.equal(r.success, false)
  assert.ok(r.conflicts.includes('src/a.js'), JSON.stringify(r))
  assert.ok(r.conflicts.includes('README.md') && r.conflicts.includes('new-local.txt'), JSON.stringify(r))
  const copies = Object.fromEntries(r.conflictCopies.map((c) => [c.path, c.copy]))
  const disk = files(a.dir)
  assert.equal(disk[copies['README.md']], 'unpushed edit')
  assert.equal(disk[copies['new-local.txt']], 'unpushed new file')
  assert.equal(disk['README.md'], 'v1')
  assert.equal(disk['new-local.txt'], undefined)
  // The other agent's version stands on S3, and reached this disk.
  assert.equal((await getObject(bucket, 'p/src/a.js')).toString(), 'b changed it')
  assert.equal(disk['src/a.js'], 'b changed it')
})

test('an unversioned bucket: no checkpoint in push results, VERSIONING_REQUIRED from the new methods', async () => {
  const bucket = await newBucket()
  const a = agent(bucket)
  a.write('f.txt', 'x')
  const r = await a.sync.push()
  assert.equal(r.success, true)
  assert.equal('checkpoint' in r, false)
  assert.deepEqual(
    (await listKeys(bucket, 'p/')).filter((k) => k.includes('checkpoints')),
    [],
  )
  for (const call of [() => a.sync.listCheckpoints(), () => a.sync.restore({ checkpoint: '1' }), () => a.sync.diff({ checkpoint: '1' })]) {
    await assert.rejects(call(), (e) => e.code === 'VERSIONING_REQUIRED' && /put-bucket-versioning/.test(e.message))
  }
  // Suspended is the same.
  await admin.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }))
  await assert.rejects(a.sync.listCheckpoints(), { code: 'VERSIONING_REQUIRED' })
})

test('a restore cancelled midway is completed by a second call; the mass-deletion guard applies', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket, { maxDeletePercent: 100 })
  for (let i = 0; i < 30; i++) a.write(`f/${i}.txt`, `one ${i}`)
  const first = await a.sync.push()
  for (let i = 0; i < 30; i++) a.write(`f/${i}.txt`, `two ${i}`)
  await a.sync.push()
  const copies = []
  const proxy = await startProxy({ delay: (r) => (r.method === 'PUT' && r.headers['x-amz-copy-source'] ? (copies.push(r), 150) : 0) })
  try {
    const slow = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: a.dir, endpoint: proxy.endpoint, logger: quiet() })
    const controller = new AbortController()
    const stopped = slow.restore({ checkpoint: first.checkpoint }, { signal: controller.signal })
    while (copies.length < 5) await new Promise((r) => setTimeout(r, 10))
    controller.abort()
    await assert.rejects(stopped, { name: 'AbortError' })
    await slow.close()
  } finally {
    await proxy.close()
  }
  const s3 = await s3Files(bucket)
  assert.ok(
    Object.values(s3).some((v) => v.startsWith('two')),
    'the restore stopped midway',
  )
  const done = await a.sync.restore({ checkpoint: first.checkpoint })
  assert.equal(done.success, true, JSON.stringify(done))
  const want = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f/${i}.txt`, `one ${i}`]))
  assert.deepEqual(await s3Files(bucket), want)
  assert.deepEqual(files(a.dir), want)
  // The checkpoint it made names that state exactly.
  assert.deepEqual(await a.sync.diff({ checkpoint: first.checkpoint }, { checkpoint: done.checkpoint }), { added: [], modified: [], deleted: [] })

  // Restoring to an empty state would delete every file: refused by default.
  const emptyBucket = await versionedBucket()
  const e = agent(emptyBucket)
  e.write('keep1.txt', '1')
  const one = await e.sync.push()
  e.write('keep2.txt', '2')
  e.write('keep3.txt', '3')
  await e.sync.push()
  e.remove('keep1.txt')
  await e.sync.push()
  await assert.rejects(e.sync.restore({ checkpoint: one.checkpoint }, { paths: ['keep2.txt', 'keep3.txt', 'keep1.txt'] }), { code: 'MASS_DELETE' })
})

test('a fresh process lists and restores what another agent pushed', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const turns = await threeTurns(a)
  const dir = tmpDir()
  const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint }
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    const quiet = { debug() {}, info() {}, warn() {}, error() {} }
    const sync = new S3WorkspaceSync({ ...${JSON.stringify(options)}, logger: quiet })
    ;(async () => {
      const list = await sync.listCheckpoints()
      const restored = await sync.restore({ checkpoint: list[list.length - 1].id })
      process.stdout.write(JSON.stringify({ ids: list.map((c) => c.id), restored }))
    })().catch((e) => process.stdout.write(JSON.stringify({ rejected: { code: e.code, message: e.message } })))
  `
  const out = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.on('data', (d) => (text += d))
    child.once('exit', () => {
      try {
        resolve(JSON.parse(text))
      } catch {
        reject(new Error(text))
      }
    })
  })
  assert.deepEqual(
    out.ids,
    [turns[2], turns[1], turns[0]].map((t) => t.checkpoint),
    JSON.stringify(out),
  )
  assert.equal(out.restored.success, true, JSON.stringify(out))
  assert.deepEqual(files(dir), turns[0].files)
  assert.deepEqual(await s3Files(bucket), turns[0].files)
})

test('a write another agent replaced before this push’s checkpoint: the checkpoints still name what S3 holds', async () => {
  const bucket = await versionedBucket()
  const a0 = agent(bucket)
  a0.write('x.txt', 'base')
  await a0.sync.push()
  // A's upload of x.txt lands, but A hears of it only once B has pulled
  // it, written over it and made its checkpoint.
  let release
  const held = new Promise((r) => (release = r))
  let seen
  const landed = new Promise((r) => (seen = r))
  const proxy = await startProxy({
    hold: (r) => {
      if (r.method === 'PUT' && r.path.endsWith('/p/x.txt')) {
        seen()
        return held
      }
      return 0
    },
  })
  try {
    a0.write('x.txt', 'from A')
    const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: a0.dir, endpoint: proxy.endpoint, logger: quiet() })
    const pushing = a.push()
    await landed
    await new Promise((r) => setTimeout(r, 200))
    const b = agent(bucket)
    await b.sync.pull()
    assert.equal(files(b.dir)['x.txt'], 'from A')
    b.write('x.txt', 'from B, over A')
    const rb = await b.sync.push()
    assert.equal(rb.uploadedFiles, 1)
    release(0)
    const ra = await pushing
    assert.equal(ra.success, true, JSON.stringify(ra))
    assert.ok(Number(ra.checkpoint) > Number(rb.checkpoint))
    await a.close()
    // A's checkpoint came last, but B's write is the current one: named so.
    assert.deepEqual(await a0.sync.diff({ checkpoint: rb.checkpoint }, { checkpoint: ra.checkpoint }), { added: [], modified: [], deleted: [] })
    const c = agent(bucket)
    const r = await c.sync.restore({ checkpoint: ra.checkpoint })
    assert.equal(r.success, true, JSON.stringify(r))
    assert.equal(r.restoredFiles, 0)
    assert.equal(files(c.dir)['x.txt'], 'from B, over A')
  } finally {
    release(0)
    await proxy.close()
  }
})

test('past 50 checkpoints: a fresh instance reads them from the snapshot, old and new restore exactly', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const states = {}
  for (let i = 1; i <= 55; i++) {
    a.write(`n/${i % 7}.txt`, `turn ${i}`)
    if (i % 10 === 0) a.remove(`n/${(i + 3) % 7}.txt`)
    const r = await a.sync.push()
    assert.equal(r.success, true)
    states[r.checkpoint] = files(a.dir)
  }
  const ids = Object.keys(states).map(Number)
  assert.equal(Math.max(...ids), 55)
  assert.ok((await listKeys(bucket, 'p/.s3ws/snapshots/')).length === 1, 'one snapshot, at 50')
  const list = await agent(bucket).sync.listCheckpoints({ limit: 100 })
  assert.equal(list.length, 55)
  for (const id of ['53', '4', '50']) {
    const fresh = agent(bucket)
    const r = await fresh.sync.restore({ checkpoint: id })
    assert.equal(r.success, true, JSON.stringify(r))
    assert.deepEqual(await s3Files(bucket), states[id], `checkpoint ${id} on S3`)
    assert.deepEqual(files(fresh.dir), states[id], `checkpoint ${id} on disk`)
  }
})

test('a path another writer changes while the restore copies it is a conflict: the other write stands', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const turns = await threeTurns(a)
  let wrote
  const proxy = await startProxy({
    delay: (r) => {
      if (r.method === 'PUT' && r.headers['x-amz-copy-source'] && r.path.endsWith('/p/src/a.js') && !wrote) {
        wrote = putObject(bucket, 'p/src/a.js', 'written during the restore')
        // The copy goes on once the other write has landed.
        return wrote
      }
      return 0
    },
  })
  try {
    const via = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: a.dir, endpoint: proxy.endpoint, logger: quiet() })
    const r = await via.restore({ checkpoint: turns[0].checkpoint })
    await wrote
    await via.close()
    if (lacks('copy-conditions')) {
      // Checked with a HEAD before the copy, which this write came after.
      assert.ok(
        r.warnings?.some((w) => w.code === 'STORE_CONDITION_IGNORED' && /CopyObject/.test(w.message)),
        JSON.stringify(r),
      )
      return
    }
    assert.deepEqual(r.conflicts, ['src/a.js'], JSON.stringify(r))
    assert.equal(r.success, false)
    assert.equal((await getObject(bucket, 'p/src/a.js')).toString(), 'written during the restore')
    assert.equal(files(a.dir)['src/a.js'], 'written during the restore')
    assert.equal(files(a.dir)['src/b.js'], 'b1')
  } finally {
    await proxy.close()
  }
})

test('a fleet of agents pushing at once: every push gets a checkpoint, and every checkpoint restores exactly', async () => {
  const bucket = await versionedBucket()
  const seedAgent = agent(bucket)
  seedAgent.write('README.md', 'fleet')
  await seedAgent.sync.push()
  const AGENTS = 5
  const ROUNDS = 4
  /** checkpoint id → the pushing agent's own files then */
  const pushed = []
  await Promise.all(
    Array.from({ length: AGENTS }, async (_, i) => {
      const a = agent(bucket)
      for (let r = 0; r < ROUNDS; r++) {
        a.write(`ag${i}/f${r}.txt`, `agent ${i} round ${r}`)
        a.write(`ag${i}/common.txt`, `agent ${i} round ${r}`)
        if (r >= 2) a.remove(`ag${i}/f${r - 2}.txt`)
        const res = await a.sync.push()
        assert.equal(res.success, true, JSON.stringify(res))
        assert.match(res.checkpoint ?? '', /^\d+$/, `agent ${i} round ${r}: no checkpoint ${JSON.stringify(res)}`)
        pushed.push({ id: Number(res.checkpoint), agent: i, files: Object.fromEntries(Object.entries(files(a.dir)).filter(([p]) => p.startsWith(`ag${i}/`))) })
      }
    }),
  )
  const ids = pushed.map((p) => p.id).sort((x, y) => x - y)
  assert.equal(new Set(ids).size, AGENTS * ROUNDS, 'one number a push')
  // The state a checkpoint names: the base, and each agent's files as its
  // last push at or before that number left them.
  const expected = (id) => {
    const out = { 'README.md': 'fleet' }
    for (let i = 0; i < AGENTS; i++) {
      const last = pushed.filter((p) => p.agent === i && p.id <= id).sort((x, y) => y.id - x.id)[0]
      Object.assign(out, last?.files ?? {})
    }
    return out
  }
  const checker = agent(bucket, { maxDeletePercent: 100 })
  for (const id of ids) {
    const r = await checker.sync.restore({ checkpoint: String(id) })
    assert.equal(r.success, true, JSON.stringify(r))
    assert.deepEqual(await s3Files(bucket), expected(id), `checkpoint ${id} on S3`)
    assert.deepEqual(files(checker.dir), expected(id), `checkpoint ${id} on disk`)
  }
})

test('keys the engine did not write under .s3ws/checkpoints/ neither hang a push nor stop checkpoints', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  a.write('f.txt', 'one')
  const first = await a.sync.push()
  for (const key of ['p/.s3ws/checkpoints/', 'p/.s3ws/checkpoints/.keep', 'p/.s3ws/checkpoints/1.json', 'p/.s3ws/checkpoints/00000000000000000000.json']) {
    await putObject(bucket, key, 'not a manifest')
  }
  a.write('f.txt', 'two')
  const started = Date.now()
  const second = await a.sync.push()
  assert.ok(Date.now() - started < 10_000, 'the push ended promptly')
  assert.equal(Number(second.checkpoint), Number(first.checkpoint) + 1, JSON.stringify(second))
  const fresh = agent(bucket)
  assert.deepEqual(
    (await fresh.sync.listCheckpoints()).map((c) => c.id),
    [second.checkpoint, first.checkpoint],
  )
  // A damaged manifest at the next number: the next push starts the chain
  // again from S3's state; the damaged one is left out of the list.
  const inverted = (n) => (18446744073709551615n - BigInt(n)).toString().padStart(20, '0')
  await putObject(bucket, `p/.s3ws/checkpoints/${inverted(Number(second.checkpoint) + 1)}.json`, '{"seq": 99, "set": {"../x": {"v": "1", "s": 1}}}')
  a.write('f.txt', 'three')
  a.write('g.txt', 'new')
  const fourth = await a.sync.push()
  assert.equal(Number(fourth.checkpoint), Number(second.checkpoint) + 2, JSON.stringify(fourth))
  assert.deepEqual(
    (await fresh.sync.listCheckpoints()).map((c) => c.id),
    [fourth.checkpoint, second.checkpoint, first.checkpoint],
  )
  await assert.rejects(fresh.sync.restore({ checkpoint: String(Number(second.checkpoint) + 1) }), (e) => e.code === 'CHECKPOINT_NOT_FOUND' && /damaged/.test(e.message))
  const r = await fresh.sync.restore({ checkpoint: fourth.checkpoint })
  assert.equal(r.success, true, JSON.stringify(r))
  assert.deepEqual(files(fresh.dir), { 'f.txt': 'three', 'g.txt': 'new' })
  for (const id of ['+1', '01', '1e3', '18446744073709551615']) {
    await assert.rejects(fresh.sync.restore({ checkpoint: id }), { code: 'CHECKPOINT_NOT_FOUND' })
  }
})

test('a checkpoint whose old version was deleted: the restore fails before it changes anything', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  for (let i = 0; i < 5; i++) a.write(`f${i}.txt`, 'one')
  const first = await a.sync.push()
  for (let i = 0; i < 5; i++) a.write(`f${i}.txt`, 'two')
  a.write('new.txt', 'new')
  await a.sync.push()
  const { ListObjectVersionsCommand, DeleteObjectCommand } = await import('@aws-sdk/client-s3')
  const versions = await admin.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'p/f2.txt' }))
  const old = versions.Versions.find((v) => !v.IsLatest)
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/f2.txt', VersionId: old.VersionId }))
  const before = await s3Files(bucket)
  for (const dryRun of [true, false]) {
    await assert.rejects(
      a.sync.restore({ checkpoint: first.checkpoint }, { dryRun }),
      (e) => e.code === 'CHECKPOINT_NOT_FOUND' && /f2\.txt/.test(e.message) && /nothing was restored/.test(e.message),
    )
  }
  assert.deepEqual(await s3Files(bucket), before)
  // The other paths can still be restored.
  const some = await a.sync.restore({ checkpoint: first.checkpoint }, { paths: ['f0.txt', 'f1.txt'] })
  assert.equal(some.success, true, JSON.stringify(some))
  assert.equal(files(a.dir)['f0.txt'], 'one')
})

test('a push aborted midway: what it wrote goes into the instance’s next checkpoint', async () => {
  const bucket = await versionedBucket()
  let slow = true
  const sent = []
  const proxy = await startProxy({
    delay: (r) => {
      if (r.method !== 'PUT' || !r.path.includes('/p/f/')) return 0
      sent.push(r.path)
      return slow && sent.length > 5 ? 400 : 0
    },
  })
  try {
    const dir = tmpDir()
    writeAt(dir, 'seed.txt', 'seed')
    const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet(), uploadConcurrency: 2 })
    const first = await a.push()
    for (let i = 0; i < 20; i++) writeAt(dir, `f/${i}.txt`, `file ${i}`)
    const controller = new AbortController()
    const stopped = a.push({ signal: controller.signal })
    while (sent.length < 7) await new Promise((r) => setTimeout(r, 10))
    controller.abort()
    await assert.rejects(stopped, { name: 'AbortError' })
    slow = false
    const second = await a.push()
    assert.equal(second.success, true, JSON.stringify(second))
    assert.ok(second.uploadedFiles < 20, `the aborted push had sent some: ${second.uploadedFiles}`)
    assert.equal(Number(second.checkpoint), Number(first.checkpoint) + 1)
    await a.close()
    const fresh = agent(bucket)
    const r = await fresh.sync.restore({ checkpoint: second.checkpoint }, { dryRun: true })
    assert.deepEqual(r.plan, { restore: [], delete: [], conflicts: [] }, 'the checkpoint names every file on S3')
    assert.equal(r.unchangedFiles, 21)
  } finally {
    await proxy.close()
  }
})

test('a dry-run restore into a directory that does not exist yet plans, and creates nothing', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  a.write('x.txt', 'one')
  const first = await a.sync.push()
  const dir = path.join(tmpDir(), 'not-yet')
  const fresh = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const r = await fresh.restore({ checkpoint: first.checkpoint }, { dryRun: true })
  assert.deepEqual(r.plan, { restore: [], delete: [], conflicts: [] })
  assert.equal(r.unchangedFiles, 1)
  assert.equal(existsSync(dir), false)
  const diff = await fresh.diff({ checkpoint: first.checkpoint })
  assert.deepEqual(diff, { added: [], modified: [], deleted: ['x.txt'] })
  assert.equal(existsSync(dir), false)
})

test('keys that are not workspace files (reserved names other tools wrote) are in no checkpoint, and a restore leaves them alone', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  // Before the first checkpoint (made whole from the listing of versions), and after.
  await putObject(bucket, 'p/sub/.s3ws/tool-state', 'tool v1')
  a.write('f.txt', 'f')
  const first = await a.sync.push()
  await putObject(bucket, 'p/sub/.s3ws/tool-state', 'tool v2')
  await putObject(bucket, 'p/x/.s3ws-0123456789abcdef.partial', 'a download of another tool')
  a.write('g.txt', 'g')
  const second = await a.sync.push()
  assert.deepEqual(await a.sync.diff({ checkpoint: first.checkpoint }, { checkpoint: second.checkpoint }), {
    added: ['g.txt'],
    modified: [],
    deleted: [],
  })
  const [newest] = await a.sync.listCheckpoints({ limit: 1 })
  assert.equal(newest.files, 2)
  const r = await a.sync.restore({ checkpoint: first.checkpoint })
  assert.equal(r.success, true, JSON.stringify(r.errors))
  assert.equal(r.deletedFiles, 1)
  assert.equal(r.restoredFiles, 0)
  assert.deepEqual(files(a.dir), { 'f.txt': 'f' })
  assert.equal((await getObject(bucket, 'p/sub/.s3ws/tool-state')).toString(), 'tool v2')
  assert.equal((await getObject(bucket, 'p/x/.s3ws-0123456789abcdef.partial')).toString(), 'a download of another tool')
})

/** Whether the newest checkpoint names exactly what S3 holds: a dry-run restore of it by a fresh, pulled instance plans nothing. */
async function newestIsS3(bucket) {
  const fresh = agent(bucket)
  await fresh.sync.pull()
  const [newest] = await fresh.sync.listCheckpoints({ limit: 1 })
  const r = await fresh.sync.restore({ checkpoint: newest.id }, { dryRun: true })
  assert.deepEqual(r.plan, { restore: [], delete: [], conflicts: [] }, `checkpoint ${newest.id} names what S3 holds`)
  assert.deepEqual(await fresh.sync.diff({ checkpoint: newest.id }), { added: [], modified: [], deleted: [] })
}

test('another agent writes back the bytes this push replaced before its checkpoint: the chain still names what S3 holds', async () => {
  const bucket = await versionedBucket()
  const a0 = agent(bucket)
  a0.write('x.txt', 'original')
  await a0.sync.push()
  // A's manifest PUT waits until B has pushed: B's checkpoint comes first.
  let seen
  const held = new Promise((r) => (seen = r))
  let release
  const gate = new Promise((r) => (release = r))
  let once = false
  const proxy = await startProxy({ delay: (r) => (r.method === 'PUT' && r.path.includes('/.s3ws/checkpoints/') && !once ? ((once = true), seen(), gate) : 0) })
  try {
    const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: a0.dir, endpoint: proxy.endpoint, logger: quiet() })
    a0.write('x.txt', 'A edit')
    const pushing = a.push()
    await held
    const b = agent(bucket)
    await b.sync.pull()
    b.write('x.txt', 'original')
    const rb = await b.sync.push()
    release()
    const ra = await pushing
    assert.ok(Number(ra.checkpoint) > Number(rb.checkpoint))
    await a.close()
  } finally {
    release()
    await proxy.close()
  }
  await newestIsS3(bucket)
})

test('a push aborted while it records its checkpoint: the next one records its writes', async () => {
  const bucket = await versionedBucket()
  const a0 = agent(bucket)
  a0.write('x.txt', 'original')
  a0.write('y.txt', 'y0')
  await a0.sync.push()
  const controller = new AbortController()
  let fired = false
  const proxy = await startProxy({
    hold: (r) => {
      if (fired || r.method !== 'GET' || !r.query.get('prefix')?.includes('.s3ws/checkpoints')) return 0
      fired = true
      setTimeout(() => controller.abort(), 5)
      return 300
    },
  })
  try {
    const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: a0.dir, endpoint: proxy.endpoint, logger: quiet() })
    a0.write('x.txt', 'A edit')
    await assert.rejects(a.push({ signal: controller.signal }), { name: 'AbortError' })
    assert.ok(fired)
    assert.equal((await getObject(bucket, 'p/x.txt')).toString(), 'A edit')
    a0.write('y.txt', 'y1')
    const next = await a.push()
    assert.equal(next.success, true, JSON.stringify(next))
    await a.close()
  } finally {
    await proxy.close()
  }
  await newestIsS3(bucket)
})

test('a restore to versions first written as new files: another agent that synced the later ones takes the restore as an edit (no conflict copies)', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  const turns = await threeTurns(a)
  const b = agent(bucket)
  assert.equal((await b.sync.pull()).success, true)
  assert.deepEqual(files(b.dir), turns[2].files)
  const restored = await a.sync.restore({ checkpoint: turns[0].checkpoint })
  assert.equal(restored.success, true, JSON.stringify(restored))
  const pulled = await b.sync.pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(pulled.conflicts, undefined)
  assert.deepEqual(files(b.dir), turns[0].files)
})

test('a restore of a file deleted since, to its first version: an agent that synced a later one and missed the deletion takes the restore as an edit', async () => {
  const bucket = await versionedBucket()
  const a = agent(bucket)
  a.write('f.txt', 'v1')
  const first = (await a.sync.push()).checkpoint
  a.write('f.txt', 'v2')
  await a.sync.push()
  const b = agent(bucket)
  assert.equal((await b.sync.pull()).success, true)
  a.remove('f.txt')
  await a.sync.push()
  const restored = await a.sync.restore({ checkpoint: first })
  assert.equal(restored.success, true, JSON.stringify(restored))
  const pulled = await b.sync.pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(pulled.conflicts, undefined)
  assert.deepEqual(files(b.dir), { 'f.txt': 'v1' })
})
