// Servers that do not apply conditional writes (If-Match, If-None-Match),
// on which the conflict rules rest: found out by a probe, said once, made
// up for with a HEAD before each write; `conditionalWrites: 'required'`
// refuses such a server, `'off'` never sends the headers. s3rver (which
// ignores them) is started here whatever the suite's server is; a proxy in
// front of the suite's server refuses them with 501.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, rmSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import { startS3rver } from '../scripts/s3-server.mjs'
import { newBucket, seed, getObject, listKeys, tmpDir, quiet, withProxy, settle, lacks } from './helpers.mjs'

const write = (dir, rel, body) => writeFileSync(path.join(dir, rel), body)
const ignoredWarnings = (result) => (result.warnings ?? []).filter((w) => w.code === 'STORE_CONDITION_IGNORED')
const conditional = (r) => 'if-match' in r.headers || 'if-none-match' in r.headers

let s3rver
let admin
before(async () => {
  s3rver = await startS3rver()
  // The server's own client environment, as a user's script would take it.
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: region } = s3rver.env
  admin = new S3Client({ endpoint: s3rver.endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } })
})
after(async () => {
  admin?.destroy()
  await s3rver?.stop()
})
let buckets = 0
async function s3rverBucket(files = {}) {
  const bucket = `s-${process.pid}-${buckets++}`
  await admin.send(new CreateBucketCommand({ Bucket: bucket }))
  for (const [rel, body] of Object.entries(files)) await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `p/${rel}`, Body: body }))
  return bucket
}
const s3rverRead = async (bucket, key) => await (await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body.transformToString()
const s3rverKeys = async (bucket) => ((await admin.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key).sort()
const s3rverSync = (bucket, dir, extra = {}) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: s3rver.endpoint, logger: quiet(), ...extra })

test('a server that ignores conditions: the first push says so once; a stale write or delete is still caught, and nothing is lost', async () => {
  const bucket = await s3rverBucket({ 'shared.txt': 'v1', 'gone.txt': 'v1', 'other.txt': 'x' })
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  const [syncA, syncB] = [s3rverSync(bucket, a), s3rverSync(bucket, b)]
  await syncA.pull()
  await syncB.pull()
  await settle()

  write(a, 'shared.txt', 'v2 by A')
  write(a, 'gone.txt', 'v2 by A')
  const first = await syncA.push()
  assert.equal(first.success, true, JSON.stringify(first.errors))
  assert.equal(first.uploadedFiles, 2)
  const said = ignoredWarnings(first)
  assert.equal(said.length, 1, JSON.stringify(first.warnings))
  assert.ok(said[0].message.includes(s3rver.endpoint), said[0].message)
  assert.match(said[0].message, /checked with a HEAD/)
  // Said once per instance, not on every push.
  write(a, 'new.txt', 'new')
  assert.deepEqual(ignoredWarnings(await syncA.push()), [])

  // B never saw A's versions: its edit of shared.txt and its deletion of
  // gone.txt are stale. The server would apply both; the HEAD check stops them.
  write(b, 'shared.txt', 'v2 by B')
  rmSync(path.join(b, 'gone.txt'))
  const stale = await syncB.push()
  assert.equal(ignoredWarnings(stale).length, 1)
  assert.deepEqual([...stale.conflicts].sort(), ['gone.txt', 'shared.txt'])
  assert.equal(await s3rverRead(bucket, 'p/shared.txt'), 'v2 by A')
  assert.equal(await s3rverRead(bucket, 'p/gone.txt'), 'v2 by A')
  // B's edit stays on its disk; its next pull keeps it as a conflict copy.
  assert.equal(readFileSync(path.join(b, 'shared.txt'), 'utf8'), 'v2 by B')
  const pulled = await syncB.pull()
  assert.deepEqual(pulled.conflicts, ['shared.txt'])
  assert.equal(readFileSync(path.join(b, pulled.conflictCopies[0].copy), 'utf8'), 'v2 by B')
  assert.equal(readFileSync(path.join(b, 'shared.txt'), 'utf8'), 'v2 by A')
  // The probes left nothing behind.
  assert.deepEqual(
    (await s3rverKeys(bucket)).filter((k) => k.includes('.s3ws')),
    [],
  )
})

test("conditionalWrites: 'required' refuses to push to a server that ignores them (UNSUPPORTED_STORE), and writes nothing", async () => {
  const bucket = await s3rverBucket({ 'a.txt': 'v1' })
  const dir = tmpDir()
  const s = s3rverSync(bucket, dir, { conditionalWrites: 'required' })
  assert.equal((await s.pull()).downloadedFiles, 1, 'a pull needs no conditions')
  write(dir, 'a.txt', 'v2')
  write(dir, 'b.txt', 'new')
  // As upstream's push does with every failure: resolved, not successful.
  const refused = await s.push()
  assert.equal(refused.success, false)
  assert.equal(refused.errorDetails.length, 1)
  const [err] = refused.errorDetails
  assert.equal(err.code, 'UNSUPPORTED_STORE')
  assert.match(err.message, /does not apply conditional writes/)
  assert.ok(err.message.includes(s3rver.endpoint), err.message)
  assert.deepEqual(await s3rverKeys(bucket), ['p/a.txt'])
  assert.equal(await s3rverRead(bucket, 'p/a.txt'), 'v1')
  // 'auto' (the default) pushes to the same server.
  assert.equal((await s3rverSync(bucket, dir).push()).uploadedFiles, 2)
})

test("conditionalWrites: 'off' never sends a condition; a stale write is still caught", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'shared.txt': 'v1' })
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  await withProxy({}, async (proxy) => {
    const off = (dir) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet(), conditionalWrites: 'off' })
    await off(a).pull()
    await off(b).pull()
    await settle()
    write(a, 'shared.txt', 'v2 by A')
    write(a, 'new.txt', 'new')
    const pushed = await off(a).push()
    assert.equal(pushed.uploadedFiles, 2)
    write(b, 'shared.txt', 'v2 by B')
    const stale = await off(b).push()
    assert.deepEqual(stale.conflicts, ['shared.txt'])
    assert.equal(proxy.requests.filter(conditional).length, 0, 'a condition was sent')
    assert.deepEqual(proxy.probes, [], "'off' probes nothing")
    assert.ok(proxy.count('PUT') >= 2, 'the writes went through this proxy')
  })
  assert.equal((await getObject(bucket, 'p/shared.txt')).toString(), 'v2 by A')
})

test('a server that refuses conditional requests (501): pushes still work, checked with a HEAD, and the warning says they were refused', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'shared.txt': 'v1', 'old.txt': 'old' })
  const [a, b] = [tmpDir('a'), tmpDir('b')]
  const notImplemented = {
    status: 501,
    body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>',
  }
  await withProxy({ fault: (r) => (conditional(r) ? notImplemented : undefined) }, async (proxy) => {
    const refusing = (dir) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const [syncA, syncB] = [refusing(a), refusing(b)]
    await syncA.pull()
    await syncB.pull()
    await settle()
    write(a, 'shared.txt', 'v2 by A')
    write(a, 'new.txt', 'new')
    rmSync(path.join(a, 'old.txt'))
    const pushed = await syncA.push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.deepEqual([pushed.uploadedFiles, pushed.deletedFiles], [2, 1])
    const said = ignoredWarnings(pushed)
    assert.equal(said.length, 1, JSON.stringify(pushed.warnings))
    assert.match(said[0].message, /refused: .*NotImplemented/)
    write(b, 'shared.txt', 'v2 by B')
    assert.deepEqual((await syncB.push()).conflicts, ['shared.txt'])
    // Only the probe sent conditions (and was refused): no write was lost to a 501.
    assert.ok(proxy.probes.some(conditional))
    assert.deepEqual(proxy.requests.filter(conditional), [])
  })
  assert.equal((await getObject(bucket, 'p/shared.txt')).toString(), 'v2 by A')
  assert.equal((await getObject(bucket, 'p/new.txt')).toString(), 'new')
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/new.txt', 'p/shared.txt'])
  assert.equal(readFileSync(path.join(b, 'shared.txt'), 'utf8'), 'v2 by B', "B's edit stays on its disk")
})

test('a server without DeleteObjects (501): deletions go one by one, said once, and a changed object is still kept', { skip: lacks('conditions') }, async () => {
  const bucket = await newBucket()
  const files = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}.txt`, `v1 ${i}`]))
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  const notImplemented = {
    status: 501,
    body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>Multi-object delete is not implemented</Message></Error>',
  }
  await withProxy({ fault: (r) => (r.method === 'POST' && r.query.has('delete') ? notImplemented : undefined) }, async (proxy) => {
    const s = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet(), maxDeletePercent: 100 })
    await s.pull()
    for (const i of [0, 1, 2, 3]) rmSync(path.join(dir, `f${i}.txt`))
    // Another agent rewrote f3.txt after this workspace synced it.
    await seed(bucket, 'p/', { 'f3.txt': 'v2 elsewhere' })
    const pushed = await s.push()
    assert.equal(pushed.deletedFiles, 3)
    assert.deepEqual(pushed.conflicts, ['f3.txt'])
    const said = (pushed.warnings ?? []).filter((w) => w.code === 'STORE_CALL_REFUSED')
    assert.equal(said.length, 1, JSON.stringify(pushed.warnings))
    assert.match(said[0].message, /does not implement DeleteObjects.*NotImplemented/)
    // Later pushes go one by one at once, and say nothing more.
    rmSync(path.join(dir, 'f4.txt'))
    rmSync(path.join(dir, 'f5.txt'))
    const batchesBefore = proxy.count('POST', (r) => r.query.has('delete'))
    const again = await s.push()
    assert.equal(again.deletedFiles, 2)
    assert.equal((again.warnings ?? []).filter((w) => w.code === 'STORE_CALL_REFUSED').length, 0)
    assert.equal(
      proxy.count('POST', (r) => r.query.has('delete')),
      batchesBefore,
    )
  })
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/f3.txt'])
})
