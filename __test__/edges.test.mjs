// Durability at the edges: the flows where an adversarial fleet of agents
// lost or reverted work (issue "Durability at the edges"), each against the
// real server (SeaweedFS), and against moto where the case is about a
// store's answers (404 for If-Match on a missing key; conditions it
// ignores). Each test asserts that nothing is lost and what the result says.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import path from 'node:path'
import { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import { startMoto } from '../scripts/s3-server.mjs'
import { endpoint, newBucket, seed, putObject, getObject, listKeys, tmpDir, readTree, quiet, withProxy, inChild, settle, STATE_DIR, lacks } from './helpers.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const write = (dir, rel, body) => {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
  writeFileSync(path.join(dir, rel), body)
}
const read = (dir, rel) => readFileSync(path.join(dir, rel), 'utf8')
const isPut = (r) => r.method === 'PUT' && !r.probe
const sync = (bucket, dir, extra = {}) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet(), ...extra })
const codes = (result) => (result.warnings ?? []).map((w) => w.code)
const many = (n, prefix = 'f') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}.txt`, `content ${i}`]))

// ---- moto: a store that follows AWS's answers, and ignores two conditions

let moto
let motoAdmin
before(async () => {
  moto = await startMoto()
  // The server's own client environment, as a user's script would take it.
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: region } = moto.env
  motoAdmin = new S3Client({ endpoint: moto.endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } })
})
after(async () => {
  motoAdmin?.destroy()
  await moto?.stop()
})
let motoBuckets = 0
async function motoBucket() {
  const name = `m-${process.pid}-${motoBuckets++}`
  await motoAdmin.send(new CreateBucketCommand({ Bucket: name }))
  return name
}
const motoSync = (bucket, dir, extra = {}) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: moto.endpoint, logger: quiet(), ...extra })
const motoGet = async (bucket, key) => Buffer.from(await (await motoAdmin.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body.transformToByteArray())
const motoKeys = async (bucket) => ((await motoAdmin.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key).sort()

test('1. a push that overlaps the agent regenerating its output leaves the new output pending, and the next push sends it', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'out/report.txt': 'report v1', 'src.txt': 'src v1', ...many(4) })
  const dir = tmpDir()
  await sync(bucket, dir).pull()
  await settle()
  rmSync(path.join(dir, 'out'), { recursive: true })
  write(dir, 'src.txt', 'src v2')
  // The upload of src.txt is held after the server stored it: the agent
  // regenerates its output while the push is between its plan (which deletes
  // out/report.txt) and its deletions.
  let regenerated = false
  await withProxy({ hold: (r) => (isPut(r) ? 400 : 0) }, async (proxy) => {
    const slow = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const pushing = slow.push()
    while (proxy.count('PUT') === 0) await sleep(10)
    write(dir, 'out/report.txt', 'report v2')
    regenerated = true
    const pushed = await pushing
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.equal(pushed.deletedFiles, 0)
  })
  assert.ok(regenerated)
  // Not forgotten: the next push uploads the new output over the synced
  // version, no false conflict.
  const again = await sync(bucket, dir).push()
  assert.equal(again.success, true, JSON.stringify(again.errors))
  assert.equal(again.uploadedFiles, 1)
  assert.equal((await getObject(bucket, 'p/out/report.txt')).toString(), 'report v2')
  const pulled = await sync(bucket, dir).pull()
  assert.equal(pulled.conflicts, undefined)
  assert.equal(read(dir, 'out/report.txt'), 'report v2')
})

test('2. (moto: 404 NoSuchKey for If-Match on a missing key) an edit of a file another agent deleted is pushed, not stuck', async () => {
  const bucket = await motoBucket()
  await motoAdmin.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/notes.md', Body: 'v1' }))
  await motoAdmin.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/keep.md', Body: 'keep' }))
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await motoSync(bucket, a).pull()
  await motoSync(bucket, b).pull()
  await settle()
  rmSync(path.join(b, 'notes.md'))
  assert.equal((await motoSync(bucket, b).push()).deletedFiles, 1)
  write(a, 'notes.md', 'v2 by agent A')
  const pushed = await motoSync(bucket, a).push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.equal(pushed.uploadedFiles, 1)
  assert.equal((await motoGet(bucket, 'p/notes.md')).toString(), 'v2 by agent A')
})

test("3a. (moto: DeleteObjects ignores per-key ETags) a stale batch delete never removes another agent's newer edit", async () => {
  const bucket = await motoBucket()
  for (const [rel, body] of Object.entries(many(8))) {
    await motoAdmin.send(new PutObjectCommand({ Bucket: bucket, Key: `p/${rel}`, Body: body }))
  }
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await motoSync(bucket, a).pull()
  await motoSync(bucket, b).pull()
  await settle()
  write(b, 'f1.txt', 'newer edit by B')
  assert.equal((await motoSync(bucket, b).push()).uploadedFiles, 1)
  for (const rel of ['f1.txt', 'f2.txt', 'f3.txt']) rmSync(path.join(a, rel))
  const pushed = await motoSync(bucket, a).push()
  assert.deepEqual(pushed.conflicts, ['f1.txt'])
  assert.equal(pushed.deletedFiles, 2)
  assert.ok(codes(pushed).includes('STORE_CONDITION_IGNORED'), JSON.stringify(pushed.warnings))
  assert.equal((await motoGet(bucket, 'p/f1.txt')).toString(), 'newer edit by B')
  const keys = await motoKeys(bucket)
  assert.ok(!keys.includes('p/f2.txt') && !keys.includes('p/f3.txt'))
  // The probe leaves nothing behind, and pulls never see it.
  assert.ok(!keys.some((k) => k.includes('.s3ws/')), keys.join())
  // B's pull gets its edit back where A deleted it, nothing lost.
  const pulled = await motoSync(bucket, a).pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(read(a, 'f1.txt'), 'newer edit by B')
})

test('3b. (moto: CompleteMultipartUpload ignores If-Match) a stale 9 MiB push never overwrites a newer version', async () => {
  const bucket = await motoBucket()
  const big = (fill) => Buffer.alloc(9 * 1024 * 1024, fill)
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  write(a, 'model.bin', big('a'))
  assert.equal((await motoSync(bucket, a).push()).uploadedFiles, 1)
  await motoSync(bucket, b).pull()
  await settle()
  write(b, 'model.bin', big('b'))
  const byB = await motoSync(bucket, b).push()
  assert.equal(byB.success, true, JSON.stringify(byB.errors))
  write(a, 'model.bin', big('c'))
  const byA = await motoSync(bucket, a).push()
  assert.deepEqual(byA.conflicts, ['model.bin'])
  assert.ok(codes(byA).includes('STORE_CONDITION_IGNORED'), JSON.stringify(byA.warnings))
  assert.ok((await motoGet(bucket, 'p/model.bin')).equals(big('b')), "B's version was overwritten")
  // A later non-conflicting large push still works on this store (one PutObject).
  write(b, 'model.bin', big('d'))
  const again = await motoSync(bucket, b).push()
  assert.equal(again.success, true, JSON.stringify(again.errors))
  assert.ok((await motoGet(bucket, 'p/model.bin')).equals(big('d')))
})

test('4. a stateDir shared with, or outliving, another workspace directory is reported and not used: nothing skipped, nothing deleted', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', many(5))
  const stateDir = tmpDir('state')
  const [one, two] = [tmpDir('one'), tmpDir('two')]
  await sync(bucket, one, { stateDir }).pull()
  const pulled = await sync(bucket, two, { stateDir }).pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(pulled.transferredFiles, 5)
  assert.ok(codes(pulled).includes('BASE_DAMAGED'), JSON.stringify(pulled.warnings))
  assert.match(pulled.warnings.find((w) => w.code === 'BASE_DAMAGED').message, /another directory/)
  const pushed = await sync(bucket, two, { stateDir }).push()
  assert.equal(pushed.deletedFiles, 0)
  assert.equal((await listKeys(bucket, 'p/')).length, 5)
  // A workspace directory made again at the same path (its files gone) with
  // the old stateDir: its pull restores everything, its push deletes nothing.
  rmSync(one, { recursive: true })
  mkdirSync(one)
  const restored = await sync(bucket, one, { stateDir }).pull()
  assert.equal(restored.transferredFiles, 5)
  assert.equal((await sync(bucket, one, { stateDir }).push()).deletedFiles, 0)
  assert.equal((await listKeys(bucket, 'p/')).length, 5)
})

test('5. a file replaced by a directory, and back, is pushed as one change; a listing with both shapes is resolved by rule', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { a: 'file a', 'd/x.txt': 'x', ...many(4) })
  const dir = tmpDir()
  await sync(bucket, dir).pull()
  await settle()
  rmSync(path.join(dir, 'a'))
  write(dir, 'a/inner.txt', 'inner')
  rmSync(path.join(dir, 'd'), { recursive: true })
  write(dir, 'd', 'now a file')
  const pushed = await sync(bucket, dir).push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.equal(pushed.conflicts, undefined)
  const keys = await listKeys(bucket, 'p/')
  assert.ok(keys.includes('p/a/inner.txt') && !keys.includes('p/a'), keys.join())
  assert.ok(keys.includes('p/d') && !keys.includes('p/d/x.txt'), keys.join())
  const other = tmpDir('other')
  const fresh = await sync(bucket, other).pull()
  assert.equal(fresh.success, true, JSON.stringify(fresh.errors))
  assert.equal(read(other, 'a/inner.txt'), 'inner')
  assert.equal(read(other, 'd'), 'now a file')

  // Both shapes on S3 (an older version's push): the newer one wins.
  const old = await newBucket()
  await seed(old, 'p/', { a: 'file a', ...many(4) })
  const synced = tmpDir('synced')
  await sync(old, synced).pull()
  await sleep(1100) // LastModified has one-second granularity
  await putObject(old, 'p/a/inner.txt', 'inner')
  const resolved = await sync(old, synced).pull()
  assert.equal(resolved.success, true, JSON.stringify(resolved.errors))
  assert.ok(codes(resolved).includes('SHAPE_CLASH'))
  assert.equal(read(synced, 'a/inner.txt'), 'inner')
  // The push of the workspace that had synced `a` removes the stale key.
  const cleaned = await sync(old, synced).push()
  assert.equal(cleaned.success, true, JSON.stringify(cleaned.errors))
  assert.ok(!(await listKeys(old, 'p/')).includes('p/a'))
  const after = await sync(old, tmpDir('after')).pull()
  assert.equal(after.warnings, undefined)
})

test('6. conflict copies: named in the result, never hidden by the ignore rules silently, bounded per path', async () => {
  const bucket = await newBucket()
  const ignorePatterns = ['*.json', '!config.json']
  await seed(bucket, 'p/', { 'config.json': '{"v":1}', ...many(3) })
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await sync(bucket, a, { ignorePatterns }).pull()
  await sync(bucket, b, { ignorePatterns }).pull()
  await settle()
  write(b, 'config.json', '{"v":"b"}')
  await sync(bucket, b, { ignorePatterns }).push()
  write(a, 'config.json', '{"v":"a"}')
  await settle()
  const pulled = await sync(bucket, a, { ignorePatterns }).pull()
  assert.deepEqual(pulled.conflicts, ['config.json'])
  assert.equal(pulled.conflictCopies.length, 1)
  const { path: origin, copy } = pulled.conflictCopies[0]
  assert.equal(origin, 'config.json')
  assert.match(copy, /^config\.json\.conflict-\d{8}-\d{6}-[0-9a-f]{4}$/)
  assert.equal(read(a, copy), '{"v":"a"}')
  // The copy is not hidden: the next push uploads it.
  const pushed = await sync(bucket, a, { ignorePatterns }).push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.equal((await getObject(bucket, `p/${copy}`)).toString(), '{"v":"a"}')

  // Every name a copy could take is ignored: said, naming the copy.
  const hidden = await newBucket()
  await seed(hidden, 'p/', { 'x.cfg': 'v1', ...many(3) })
  const [c, d] = [tmpDir('c'), tmpDir('d')]
  const hide = ['*.conflict-*']
  await sync(hidden, c, { ignorePatterns: hide }).pull()
  await sync(hidden, d, { ignorePatterns: hide }).pull()
  await settle()
  write(d, 'x.cfg', 'by d')
  await sync(hidden, d, { ignorePatterns: hide }).push()
  write(c, 'x.cfg', 'by c')
  await settle()
  const warned = await sync(hidden, c, { ignorePatterns: hide }).pull()
  const w = warned.warnings.find((x) => x.code === 'COPY_IGNORED')
  assert.ok(w, JSON.stringify(warned.warnings))
  assert.equal(w.path, warned.conflictCopies[0].copy)

  // At ten copies of one path made here, no eleventh: both versions stay
  // where they are. (Other agents' copies, pulled, do not count.)
  const bound = await newBucket()
  await seed(bound, 'p/', { 'n.md': 'v0', ...many(3) })
  const e = tmpDir('e')
  await sync(bound, e).pull()
  const conflictOnce = async (i) => {
    await settle()
    write(e, 'n.md', `local edit ${i}`)
    await putObject(bound, 'p/n.md', `s3 edit ${i}`)
    await settle()
    return sync(bound, e).pull()
  }
  const first = await conflictOnce(0)
  const tag = first.conflictCopies[0].copy.match(/-([0-9a-f]{4})\.md$/)[1]
  for (let i = 1; i < 10; i++) write(e, `n.conflict-20261201-1200${String(i).padStart(2, '0')}-${tag}.md`, `copy ${i}`)
  for (let i = 0; i < 10; i++) write(e, `n.conflict-20261201-1300${String(i).padStart(2, '0')}-${tag === 'ffff' ? 'fffe' : 'ffff'}.md`, `other agent ${i}`)
  const stuck = await conflictOnce(1)
  assert.deepEqual(stuck.conflicts, ['n.md'])
  assert.equal(stuck.conflictCopies, undefined)
  assert.equal(read(e, 'n.md'), 'local edit 1')
  assert.equal((await getObject(bound, 'p/n.md')).toString(), 's3 edit 1')
})

test('7. a damaged sync base is reported; what still checks is used; nothing is deleted or reverted silently', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', many(40))
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await sync(bucket, a).pull()
  await sync(bucket, b).pull()
  await settle()
  // B deletes a file; A has an unpushed edit and a deletion of its own.
  rmSync(path.join(b, 'f3.txt'))
  assert.equal((await sync(bucket, b).push()).deletedFiles, 1)
  write(a, 'f20.txt', 'unpushed edit')
  rmSync(path.join(a, 'f21.txt'))
  // One byte flipped at 30% of A's base.
  const stateFile = readdirSync(path.join(a, STATE_DIR)).find((f) => f.endsWith('.base'))
  const basePath = path.join(a, STATE_DIR, stateFile)
  const bytes = readFileSync(basePath)
  bytes[Math.floor(bytes.length * 0.3)] ^= 0x20
  writeFileSync(basePath, bytes)
  const pulled = await sync(bucket, a).pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.ok(codes(pulled).includes('BASE_DAMAGED'), JSON.stringify(pulled.warnings))
  // At most one run of records lost: the rest follows the usual rules, and
  // a path whose record was lost keeps both versions, reported.
  const unknown = (pulled.warnings ?? []).filter((w) => w.code === 'UNKNOWN_TO_BASE').map((w) => w.path)
  assert.ok(unknown.length <= 16, `${unknown.length} paths lost`)
  if (read(a, 'f20.txt') !== 'unpushed edit') {
    assert.deepEqual(
      pulled.conflictCopies?.map((c) => c.path),
      ['f20.txt'],
    )
    assert.equal(read(a, pulled.conflictCopies[0].copy), 'unpushed edit')
  }
  assert.ok(!existsSync(path.join(a, 'f21.txt')) || unknown.includes('f21.txt'))
  // An emptied base: not used, reported, and every difference kept both ways.
  writeFileSync(basePath, '')
  const emptied = await sync(bucket, a).pull()
  assert.equal(emptied.success, true, JSON.stringify(emptied.errors))
  assert.ok(codes(emptied).includes('BASE_DAMAGED'))
  assert.equal(emptied.deletedFiles, 0)
  const tree = readTree(a)
  assert.ok(Object.values(tree).includes('unpushed edit'), 'the unpushed edit was lost')
  const pushed = await sync(bucket, a).push()
  assert.equal(pushed.deletedFiles, 0)
})

test('8. a push killed after the server stored its upload, then a deletion by another agent: the deletion stands, the bytes survive as a copy', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'doc.md': 'v1', ...many(4) })
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await sync(bucket, a).pull()
  await settle()
  write(a, 'doc.md', 'v2 by A')
  let stored = false
  await withProxy({ hold: (r) => (isPut(r) ? ((stored = true), new Promise(() => {})) : 0) }, async (proxy) => {
    const killed = await inChild({ bucket, prefix: 'p/', workspaceDir: a, endpoint: proxy.endpoint }, 'push', {
      onStart: async (child) => {
        // eslint-disable-next-line no-unmodified-loop-condition -- the proxy's hold() sets it
        while (!stored) await sleep(10)
        child.kill('SIGKILL')
      },
    })
    assert.deepEqual(killed, { killed: 'SIGKILL' })
  })
  assert.equal((await getObject(bucket, 'p/doc.md')).toString(), 'v2 by A')
  await sync(bucket, b).pull()
  rmSync(path.join(b, 'doc.md'))
  assert.equal((await sync(bucket, b).push()).deletedFiles, 1)
  const pushed = await sync(bucket, a).push()
  assert.deepEqual(pushed.conflicts, ['doc.md'])
  const copy = pushed.conflictCopies[0].copy
  assert.match(copy, /^doc\.conflict-.*\.md$/)
  const keys = await listKeys(bucket, 'p/')
  assert.ok(!keys.includes('p/doc.md'), 'the deletion by B was reverted')
  assert.equal((await getObject(bucket, `p/${copy}`)).toString(), 'v2 by A')
  assert.ok(!existsSync(path.join(a, 'doc.md')))
})

test('8b. a push killed after the server stored its uploads, then those files deleted or edited again here: the pull keeps what was done here, and the push deletes or replaces those writes (no conflict, nothing comes back)', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'doc.md': 'v1', 'edit.md': 'v1', ...many(4) })
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await sync(bucket, a).pull()
  await settle()
  write(a, 'doc.md', 'doc v2')
  write(a, 'edit.md', 'edit v2')
  write(a, 'new.md', 'new')
  // Each upload's answer is held once the server stored it; the push is
  // killed when all three are stored, never learning of any.
  let stored = 0
  await withProxy({ hold: (r) => (isPut(r) ? (stored++, new Promise(() => {})) : 0) }, async (proxy) => {
    const options = { bucket, prefix: 'p/', workspaceDir: a, endpoint: proxy.endpoint, uploadConcurrency: 4 }
    const killed = await inChild(options, 'push', {
      onStart: async (child) => {
        // eslint-disable-next-line no-unmodified-loop-condition -- the proxy's hold() sets it
        while (stored < 3) await sleep(10)
        child.kill('SIGKILL')
      },
    })
    assert.deepEqual(killed, { killed: 'SIGKILL' })
  })
  for (const [rel, body] of [
    ['doc.md', 'doc v2'],
    ['edit.md', 'edit v2'],
    ['new.md', 'new'],
  ]) {
    assert.equal((await getObject(bucket, `p/${rel}`)).toString(), body)
  }
  rmSync(path.join(a, 'doc.md'))
  rmSync(path.join(a, 'new.md'))
  write(a, 'edit.md', 'edit v3')
  // Those objects are this workspace's own writes, not another agent's
  // changes: no conflict copy, nothing downloaded back.
  const pulled = await sync(bucket, a).pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.deepEqual([pulled.conflicts, pulled.conflictCopies, pulled.transferredFiles], [undefined, undefined, 0])
  assert.deepEqual(
    Object.keys(readTree(a))
      .filter((r) => r.endsWith('.md'))
      .sort(),
    ['edit.md'],
  )
  assert.equal(read(a, 'edit.md'), 'edit v3')
  const pushed = await sync(bucket, a).push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.equal(pushed.conflicts, undefined)
  assert.deepEqual([pushed.uploadedFiles, pushed.deletedFiles], [1, 2])
  const keys = await listKeys(bucket, 'p/')
  assert.ok(!keys.includes('p/doc.md') && !keys.includes('p/new.md'), keys.join(' '))
  assert.equal((await getObject(bucket, 'p/edit.md')).toString(), 'edit v3')
  // Elsewhere, nothing comes back.
  await sync(bucket, b).pull()
  assert.deepEqual(
    Object.keys(readTree(b))
      .filter((r) => r.endsWith('.md'))
      .sort(),
    ['edit.md'],
  )
  const again = await sync(bucket, a).push()
  assert.deepEqual([again.success, again.uploadedFiles, again.deletedFiles], [true, 0, 0])
})

test('9. two agents editing one file in a tight pull-edit-push loop both make progress, and no pushed line is lost', { skip: lacks('conditions') }, async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'shared.txt': 'start\n' })
  const agents = ['A', 'B'].map((name) => ({ name, dir: tmpDir(name), pushedLines: [], pushes: 0, solo: 0 }))
  for (const agent of agents) await sync(bucket, agent.dir).pull()
  // One round: pull, edit, push, no pause (the edit is always just before
  // the next pull: "written after the call" for it).
  const round = async (agent, s, i, counter) => {
    await s.pull()
    const line = `${agent.name}-${i}`
    appendFileSync(path.join(agent.dir, 'shared.txt'), `${line}\n`)
    const pushed = await s.push()
    if (pushed.success) {
      agent[counter]++
      agent.pushedLines.push(line)
    }
  }
  // Fewer rounds than the 10 conflict copies a path may have: at that cap a
  // pull leaves both versions where they are until the copies are merged
  // (this loop never merges), so an agent whose every round conflicted
  // would stop there by design, and the solo rounds below could not pass.
  const rounds = 9
  await Promise.all(
    agents.map(async (agent) => {
      const s = sync(bucket, agent.dir)
      for (let i = 0; i < rounds; i++) await round(agent, s, i, 'pushes')
      await s.close()
    }),
  )
  // Then each alone, still in a tight loop: with nobody else writing, every
  // push goes through (before, an agent's own edits kept its file out of
  // every merge, and its pushes failed forever).
  for (const agent of agents) {
    const s = sync(bucket, agent.dir)
    for (let i = rounds; i < rounds + 5; i++) await round(agent, s, i, 'solo')
    await s.close()
    assert.equal(agent.solo, 5, `${agent.name}: ${agent.solo} of 5 pushes went through alone`)
  }
  assert.ok(
    agents.some((a) => a.pushes > 0),
    'no push went through while both ran',
  )
  const keys = await listKeys(bucket, 'p/')
  const everything = new Set((await Promise.all(keys.map((k) => getObject(bucket, k)))).flatMap((b) => String(b).split('\n')))
  for (const agent of agents) {
    for (const line of agent.pushedLines) assert.ok(everything.has(line), `${line} was pushed, then lost`)
  }
  console.log(`# tight loop: pushes through while both ran: A ${agents[0].pushes}/${rounds}, B ${agents[1].pushes}/${rounds}; alone: 5/5 each; copies ${keys.length - 1}`)
})

test('10. writes the engine cannot see by their stat: a file held open for writing is never replaced; one mapped writable is hashed again', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'log.txt': 'line 1\n', 'map.bin': 'aaaa', ...many(3) })
  const dir = tmpDir()
  await sync(bucket, dir).pull()
  await settle()
  // An open handle across a pull that would replace the file.
  const fd = openSync(path.join(dir, 'log.txt'), 'a')
  await putObject(bucket, 'p/log.txt', 'line 1\nfrom another agent\n')
  const pulled = await sync(bucket, dir).pull()
  assert.ok(codes(pulled).includes('OPEN_FOR_WRITING'), JSON.stringify(pulled.warnings))
  writeSync(fd, 'line 2 through the open handle\n')
  closeSync(fd)
  assert.equal(read(dir, 'log.txt'), 'line 1\nline 2 through the open handle\n')
  const next = await sync(bucket, dir).pull()
  const all = Object.values(readTree(dir)).join('')
  assert.ok(all.includes('line 2 through the open handle') && all.includes('from another agent'), JSON.stringify(next))

  // A writable shared mapping held across pushes (python's mmap): the
  // second write lands on a page that is still dirty and writable, so the
  // kernel leaves mtime alone; every push hashes the file again while it is
  // mapped, so that write is still pushed.
  const script = `
import mmap, sys, time
f = open(sys.argv[1], 'r+b')
m = mmap.mmap(f.fileno(), 0)
m[0:4] = b'bbbb'; print('one', flush=True)
sys.stdin.readline()
m[0:4] = b'cccc'; print('two', flush=True)
sys.stdin.readline()
`
  const py = spawn(process.env.PYTHON || 'python3', ['-c', script, path.join(dir, 'map.bin')], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  py.stdout.on('data', (d) => lines.push(...String(d).split('\n').filter(Boolean)))
  const waitFor = async (n) => {
    while (lines.length < n) await sleep(10)
  }
  try {
    await waitFor(1)
    await sleep(250) // older than the racy window: a plain file would be trusted by stat now
    const first = await sync(bucket, dir).push()
    assert.equal(first.success, true, JSON.stringify(first.errors))
    assert.equal((await getObject(bucket, 'p/map.bin')).toString(), 'bbbb')
    const before = statSync(path.join(dir, 'map.bin')).mtimeMs
    py.stdin.write('\n')
    await waitFor(2)
    const second = await sync(bucket, dir).push()
    assert.equal(second.success, true, JSON.stringify(second.errors))
    assert.equal((await getObject(bucket, 'p/map.bin')).toString(), 'cccc', `mtime ${before} -> ${statSync(path.join(dir, 'map.bin')).mtimeMs}`)
  } finally {
    py.stdin.end()
    py.kill()
  }
})

test('11. the mass-deletion guard covers small trees and deletions spread over pushes; an emptied workspace is restored by a pull', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', many(3, 's'))
  const small = tmpDir('small')
  await sync(bucket, small).pull()
  rmSync(path.join(small, 's0.txt'))
  rmSync(path.join(small, 's1.txt'))
  const refused = await sync(bucket, small).push()
  assert.equal(refused.deletedFiles, 0)
  assert.ok(refused.errorDetails.some((e) => e.code === 'MASS_DELETE'))
  assert.equal((await listKeys(bucket, 'p/')).length, 3)

  const spread = await newBucket()
  await seed(spread, 'p/', many(10))
  const dir = tmpDir('spread')
  await sync(spread, dir).pull()
  for (const i of [0, 1, 2, 3]) rmSync(path.join(dir, `f${i}.txt`))
  assert.equal((await sync(spread, dir).push()).deletedFiles, 4)
  for (const i of [4, 5]) rmSync(path.join(dir, `f${i}.txt`))
  const second = await sync(spread, dir).push()
  assert.equal(second.deletedFiles, 0)
  assert.match(second.errors.join(), /6 of the 10 files synced at the last pull/)
  // New files come and go without counting.
  write(dir, 'scratch.txt', 'tmp')
  await sync(spread, dir).push()
  rmSync(path.join(dir, 'scratch.txt'))

  // rm -rf ./* then a pull: the deletions are a mass deletion, so the pull
  // brings the files back instead of keeping them for a push.
  for (const f of readdirSync(dir)) if (f !== STATE_DIR) rmSync(path.join(dir, f), { recursive: true })
  const restored = await sync(spread, dir).pull()
  assert.ok(codes(restored).includes('DELETIONS_RESTORED'), JSON.stringify(restored.warnings))
  assert.ok(existsSync(path.join(dir, 'f9.txt')) && existsSync(path.join(dir, 'f4.txt')))
  // One deletion is the agent's own business, unless it asks for it back.
  rmSync(path.join(dir, 'f9.txt'))
  await sync(spread, dir).pull()
  assert.ok(!existsSync(path.join(dir, 'f9.txt')))
  const back = await sync(spread, dir).pull({ restoreDeleted: true })
  assert.ok(codes(back).includes('DELETIONS_RESTORED'))
  assert.equal(read(dir, 'f9.txt'), 'content 9')
})
