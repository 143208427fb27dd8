// Large files: multipart uploads from disk, ranged parallel downloads, and
// recognition of unchanged objects whose ETag is not an MD5.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import {
  admin,
  endpoint,
  getObject,
  putObject,
  newBucket,
  listKeys,
  tmpDir,
  md5,
  contentHash,
  randomBuffer,
  startProxy,
  headObject,
  isList,
  quiet,
  lacks,
  withProxy,
} from './helpers.mjs'

const MiB = 1024 * 1024

/**
 * A proxy `hold` for the first write of `p/big.bin` (its completion; or its
 * one PUT, where the server ignores If-Match on completions and the engine
 * sends the file whole): held 500 ms, `controller` aborted meanwhile, so a
 * push stops once S3 stored the bytes but before it heard so.
 */
function holdFirstWrite(controller) {
  const held = { fired: false }
  held.hold = (req) => {
    const write = (req.method === 'POST' && req.query.has('uploadId')) || (req.method === 'PUT' && !req.query.has('partNumber'))
    if (held.fired || !write || !req.path.endsWith('/p/big.bin')) return 0
    held.fired = true
    setTimeout(() => controller.abort(), 20)
    return 500
  }
  return held
}

test('a 40 MiB file goes up in parts and comes down in ranges, intact, then is known unchanged', async () => {
  const bucket = await newBucket()
  const body = randomBuffer(40 * MiB)
  const src = tmpDir('src')
  writeFileSync(path.join(src, 'big.bin'), body)
  const proxy = await startProxy()
  try {
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: src, endpoint: proxy.endpoint, logger: quiet() }).push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.equal(
      proxy.count('POST', (r) => r.query.has('uploads') && !r.path.includes('/.s3ws/')),
      1,
    )
    // (Not the once-per-instance probe of whether the server honours
    // If-Match on CompleteMultipartUpload: it is not AWS.)
    const parts = proxy.requests.filter((r) => r.method === 'PUT' && r.query.has('partNumber') && !r.path.includes('/.s3ws/'))
    assert.equal(parts.length, 5)
    // New, so not hashed first: each part's CRC64NVME guards it where the
    // server verifies those (probed), else its Content-MD5.
    const guard = lacks('checksums') ? 'content-md5' : 'x-amz-checksum-crc64nvme'
    assert.ok(
      parts.every((r) => typeof r.headers[guard] === 'string'),
      `every part carries ${guard}`,
    )
    const head = await headObject(bucket, 'p/big.bin')
    // The ETag S3 computed from the parts is the content hash the engine
    // computed from them as they went (new, the file was not hashed first):
    // the metadata says the part size that makes it so.
    if (!lacks('multipart-etag')) {
      assert.equal(head.ETag, `"${contentHash(body)}"`)
      assert.match(head.ETag, /-5"$/)
    }
    assert.equal(head.Metadata['s3ws-part-size'], String(8 * MiB))

    const dst = tmpDir('dst')
    const before = proxy.requests.length
    const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dst, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
    assert.equal(md5(readFileSync(path.join(dst, 'big.bin'))), md5(body))
    const gets = proxy.requests.slice(before).filter((r) => r.method === 'GET' && !isList(r))
    assert.equal(gets.length, 5)
    assert.ok(
      gets.every((r) => /^bytes=\d+-\d+$/.test(r.headers.range)),
      'ranged GETs',
    )
    // Uploaded with checksums, it keeps its whole CRC64NVME, asked with a
    // HEAD beside the first range (and, from a new instance, beside the
    // probe of whether the server verifies checksums): what checks the
    // download where the server does.
    const checked = proxy.requests.slice(before).filter((r) => r.method === 'HEAD' && r.headers['x-amz-checksum-mode'] === 'ENABLED')
    assert.equal(checked.length, 1)

    // A fresh instance: the sync base knows the object's ETag; no HEAD, no GET.
    const mark = proxy.requests.length
    const again = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dst, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.deepEqual([again.downloadedFiles, again.transferredFiles], [1, 0])
    const later = proxy.requests.slice(mark)
    assert.equal(later.filter((r) => r.method === 'GET' && !isList(r)).length, 0)
    assert.equal(later.filter((r) => r.method === 'HEAD').length, 0)

    // Without a base (another directory already holding the bytes): the
    // listed ETag is the local file's content hash; no HEAD, no GET.
    const copy = tmpDir('copy')
    writeFileSync(path.join(copy, 'big.bin'), body)
    const mark2 = proxy.requests.length
    const adopted = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: copy, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(adopted.success, true)
    const later2 = proxy.requests.slice(mark2)
    assert.equal(later2.filter((r) => r.method === 'GET' && !isList(r)).length, 0)
    // (A server whose multipart ETag is not the parts' hash gets a HEAD for the stored hash.)
    if (!lacks('multipart-etag')) assert.equal(later2.filter((r) => r.method === 'HEAD').length, 0)
  } finally {
    await proxy.close()
  }
})

test('a completed upload whose answer the SDK cannot read is a success when it names the ETag (moto 5.2.1 names its root otherwise), and an error saying so when it does not', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const body = randomBuffer(10 * MiB)
  writeFileSync(path.join(dir, 'big.bin'), body)
  const open = (at) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: at, logger: quiet() })
  const completion = (r) => r.method === 'POST' && r.query.has('uploadId') && r.path.includes('/p/')
  const renamed = (text) => text.replaceAll('CompleteMultipartUploadResult', 'CompleteMultipartUploadResponse')
  await withProxy({ fault: (r) => completion(r) && { rewrite: renamed } }, async (proxy) => {
    const pushed = await open(proxy.endpoint).push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.equal(pushed.uploadedFiles, 1)
    assert.equal(proxy.count('POST', completion), 1)
  })
  assert.equal(md5(await getObject(bucket, 'p/big.bin')), md5(body))
  // The base holds the write: the next push sends nothing.
  await withProxy({}, async (proxy) => {
    const again = await open(proxy.endpoint).push()
    assert.deepEqual([again.success, again.uploadedFiles], [true, 0])
    assert.equal(proxy.count('PUT') + proxy.count('POST'), 0)
  })

  // A 200 that names no ETag: the write is not taken on trust. The push
  // says the answer was unreadable, and the next one finds the bytes there.
  // (A new file: its completion is conditional on every server; moto 5.2.5
  // ignores If-Match there, so an edit would go up in one PUT.)
  const added = randomBuffer(10 * MiB)
  writeFileSync(path.join(dir, 'other.bin'), added)
  await withProxy({ fault: (r) => completion(r) && { rewrite: () => '<Nonsense/>' } }, async (proxy) => {
    const pushed = await open(proxy.endpoint).push()
    assert.equal(pushed.success, false)
    assert.match(pushed.errors.join('\n'), /CompleteMultipartUpload .* failed: InvalidResponse/)
  })
  const after = await open(endpoint).push()
  assert.equal(after.success, true, JSON.stringify(after.errors))
  assert.equal(after.conflicts, undefined)
  assert.equal(md5(await getObject(bucket, 'p/other.bin')), md5(added))
  assert.equal(md5(readFileSync(path.join(dir, 'other.bin'))), md5(added))
  const settled = await open(endpoint).push()
  assert.deepEqual([settled.success, settled.uploadedFiles], [true, 0])
})

test('a multipart object without a stored MD5 is downloaded once, then known by its ETag (no GET from a fresh instance)', async () => {
  const bucket = await newBucket()
  const part = randomBuffer(5 * MiB)
  const { UploadId } = await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'p/other.bin' }))
  const Parts = []
  for (const PartNumber of [1, 2]) {
    const { ETag } = await admin.send(new UploadPartCommand({ Bucket: bucket, Key: 'p/other.bin', UploadId, PartNumber, Body: part }))
    Parts.push({ ETag, PartNumber })
  }
  await admin.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'p/other.bin', UploadId, MultipartUpload: { Parts } }))
  const dir = tmpDir()
  const sync = () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: new URL(process.env.S3WS_TEST_ENDPOINT).origin, logger: quiet() })
  assert.equal((await sync().pull()).downloadedFiles, 1)
  assert.equal(md5(readFileSync(path.join(dir, 'other.bin'))), md5(Buffer.concat([part, part])))
  // Its ETag is no MD5, but the sync base recorded it: a fresh instance
  // sees it unchanged. (Before the base, every fresh pull downloaded it again.)
  const proxy = await startProxy()
  try {
    const again = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(again.success, true)
    assert.equal(proxy.requests.filter((r) => r.method === 'GET' && !isList(r)).length, 0)
    assert.equal(proxy.count('HEAD'), 0)
  } finally {
    await proxy.close()
  }
})

test('a large file new or resized under a base goes up unhashed (its parts hashed as they are sent): verified on pull, known to the base, and a push stopped after S3 stored it is known as its own', async () => {
  const bucket = await newBucket()
  const dir = tmpDir('src')
  const open = (at = endpoint) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: at, logger: quiet() })
  writeFileSync(path.join(dir, 'small.txt'), 'under a base')
  await open().push()
  const body = randomBuffer(20 * MiB)
  writeFileSync(path.join(dir, 'big.bin'), body)
  const a = open()
  const r = await a.push()
  assert.equal(r.success, true, JSON.stringify(r.errors))
  assert.equal(r.uploadedFiles, 1)
  // Its hash was not known when the upload began: the object says its
  // part size (the ETag is then the content hash) and the upload's token.
  const head = await headObject(bucket, 'p/big.bin')
  assert.equal(head.Metadata['s3ws-md5'], undefined)
  assert.equal(head.Metadata['s3ws-part-size'], String(8 * MiB))
  assert.match(head.Metadata['s3ws-upload'], /^upload-[0-9a-f]{16}$/)
  if (!lacks('multipart-etag')) assert.equal(head.ETag, `"${contentHash(body)}"`)
  // The base holds the content hash the parts made up.
  assert.equal((await a.push()).uploadedFiles, 0)
  const dst = tmpDir('dst')
  const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dst, endpoint, logger: quiet() }).pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(md5(readFileSync(path.join(dst, 'big.bin'))), md5(body))
  await a.close()

  // Resized, and the push stopped once S3 completed the upload but before
  // it heard so; edited again: the next push replaces its own write (the
  // object's token is the base's intent), no conflict.
  const controller = new AbortController()
  const held = holdFirstWrite(controller)
  await withProxy({ hold: held.hold }, async (proxy) => {
    const b = open(proxy.endpoint)
    const bigger = randomBuffer(24 * MiB)
    writeFileSync(path.join(dir, 'big.bin'), bigger)
    await assert.rejects(b.push({ signal: controller.signal }), { name: 'AbortError' })
    assert.ok(held.fired)
    assert.equal(md5(await getObject(bucket, 'p/big.bin')), md5(bigger))
    const third = randomBuffer(24 * MiB)
    writeFileSync(path.join(dir, 'big.bin'), third)
    const again = await b.push()
    assert.equal(again.success, true, JSON.stringify(again))
    assert.deepEqual([again.uploadedFiles, again.conflicts ?? []], [1, []])
    assert.equal(md5(await getObject(bucket, 'p/big.bin')), md5(third))
    await b.close()
  })
})

test('a new large file whose push stopped once S3 stored it, then deleted here: the pull does not bring it back, and the push deletes that write', async () => {
  const bucket = await newBucket()
  await putObject(bucket, 'p/x.md', 'x')
  const dir = tmpDir()
  const open = (at = endpoint) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: at, logger: quiet() })
  await open().pull()
  writeFileSync(path.join(dir, 'big.bin'), randomBuffer(9 * MiB))
  const controller = new AbortController()
  const held = holdFirstWrite(controller)
  await withProxy({ hold: held.hold }, async (proxy) => {
    await assert.rejects(open(proxy.endpoint).push({ signal: controller.signal }), { name: 'AbortError' })
  })
  assert.ok(held.fired)
  assert.equal((await headObject(bucket, 'p/big.bin')).ContentLength, 9 * MiB)
  rmSync(path.join(dir, 'big.bin'))
  const pulled = await open().pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(pulled.transferredFiles, 0)
  assert.ok(!existsSync(path.join(dir, 'big.bin')), 'the deleted file came back')
  const pushed = await open().push()
  assert.deepEqual([pushed.success, pushed.deletedFiles, pushed.conflicts], [true, 1, undefined])
  await assert.rejects(headObject(bucket, 'p/big.bin'))
})

test(
  'a large object checked by its CRC whose s3ws-md5 another writer left stale: recorded by its real content hash, so a later local write of the bytes that metadata names is pushed',
  { skip: lacks('checksums') },
  async () => {
    const bucket = await newBucket()
    const a = randomBuffer(40 * MiB)
    const b = randomBuffer(40 * MiB)
    // B with the metadata of A (a writer that copied the old object's
    // metadata), and a CRC32 (the SDK's default checksum).
    await putObject(bucket, 'p/big.bin', b, { Metadata: { 's3ws-md5': contentHash(a) }, ChecksumAlgorithm: 'CRC32' })
    const dir = tmpDir()
    const open = () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
    const pulled = await open().pull()
    assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
    assert.equal(md5(readFileSync(path.join(dir, 'big.bin'))), md5(b))
    writeFileSync(path.join(dir, 'big.bin'), a)
    const pushed = await open().push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.equal(pushed.uploadedFiles, 1)
    assert.equal(md5(await getObject(bucket, 'p/big.bin')), md5(a))
  },
)

test('a large object sent elsewhere in one PUT is checked by its CRC or whole MD5 and not hashed twice: kept while unchanged, sent again once touched, then known by its hash', async () => {
  const bucket = await newBucket()
  const a = randomBuffer(20 * MiB)
  const b = randomBuffer(20 * MiB)
  // One PUT with the SDK's default checksum (CRC32), one with none (an
  // older tool): only the ETag, the whole MD5.
  await putObject(bucket, 'p/crc.bin', a)
  const plain = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' })
  await plain.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/md5.bin', Body: b }))
  const dir = tmpDir()
  const open = () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const pulled = await open().pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(md5(readFileSync(path.join(dir, 'crc.bin'))), md5(a))
  assert.equal(md5(readFileSync(path.join(dir, 'md5.bin'))), md5(b))
  assert.equal((await open().push()).uploadedFiles, 0, 'unchanged: known by its stat')
  // Touched: the base holds no content hash to compare with, so the bytes
  // go up again (hashed as they are sent), unchanged on S3.
  const later = new Date(Date.now() + 5_000)
  for (const name of ['crc.bin', 'md5.bin']) utimesSync(path.join(dir, name), later, later)
  const resent = await open().push()
  assert.equal(resent.success, true, JSON.stringify(resent.errors))
  assert.equal(resent.uploadedFiles, 2)
  assert.equal(md5(await getObject(bucket, 'p/crc.bin')), md5(a))
  assert.equal(md5(await getObject(bucket, 'p/md5.bin')), md5(b))
  // Now hashed: touched again, the hash says unchanged and nothing is sent.
  const later2 = new Date(Date.now() + 10_000)
  for (const name of ['crc.bin', 'md5.bin']) utimesSync(path.join(dir, name), later2, later2)
  assert.equal((await open().push()).uploadedFiles, 0)
  // A changed object on S3 replaces the unhashed file cleanly.
  await putObject(bucket, 'p/crc.bin', b)
  const again = await open().pull()
  assert.deepEqual([again.success, again.transferredFiles, again.conflicts?.length ?? 0], [true, 1, 0], JSON.stringify(again))
  assert.equal(md5(readFileSync(path.join(dir, 'crc.bin'))), md5(b))
  plain.destroy()
})

test('two agents push the same new large file at the same moment: neither version is lost', async () => {
  // moto and SeaweedFS check If-None-Match on CompleteMultipartUpload and
  // then store: both completions can pass. The push waits for the other
  // upload of its key and looks: usually one is told CONFLICT. Where both
  // still are told they stored it (moto ends an upload before it stores),
  // the loser's next pull finds S3's version written as new over the one it
  // synced, and keeps its own as a conflict copy. Several rounds: a race.
  const bucket = await newBucket()
  for (let round = 0; round < 4; round++) {
    const prefix = `r${round}/`
    const [dirA, dirB] = [tmpDir('a'), tmpDir('b')]
    const [bodyA, bodyB] = [randomBuffer(20 * MiB), randomBuffer(20 * MiB)]
    writeFileSync(path.join(dirA, 'n.bin'), bodyA)
    writeFileSync(path.join(dirB, 'n.bin'), bodyB)
    const a = new S3WorkspaceSync({ bucket, prefix, workspaceDir: dirA, endpoint, logger: quiet() })
    const b = new S3WorkspaceSync({ bucket, prefix, workspaceDir: dirB, endpoint, logger: quiet() })
    const both = await Promise.all([a.push(), b.push()])
    const told = both.filter((r) => !r.success)
    assert.ok(told.length <= 1, `round ${round}: ${JSON.stringify(both)}`)
    for (const r of told) {
      assert.deepEqual(
        r.errorDetails.map((e) => e.code),
        ['CONFLICT'],
      )
      assert.deepEqual(r.conflicts, ['n.bin'])
    }
    // Each pulls (the loser keeps its version under a conflict name) and
    // pushes: S3, and each workspace after one more pull, hold both.
    for (const agent of [a, b]) {
      assert.equal((await agent.pull()).success, true)
      assert.equal((await agent.push()).success, true)
    }
    const held = await Promise.all((await listKeys(bucket, prefix)).filter((k) => !k.includes('/.s3ws/')).map(async (k) => md5(await getObject(bucket, k))))
    assert.deepEqual(held.sort(), [md5(bodyA), md5(bodyB)].sort(), `round ${round}`)
  }
})

test('a large write replaced as it landed (another writer whose check passed first stores after it) is a CONFLICT, and its version is kept', async () => {
  // What a server that checks conditions before it stores allows, made
  // certain: the proxy holds the answer to this push's completion while
  // another writer's bytes land over the key.
  const bucket = await newBucket()
  const dir = tmpDir()
  const ours = randomBuffer(10 * MiB)
  const theirs = randomBuffer(MiB)
  writeFileSync(path.join(dir, 'big.bin'), ours)
  const completion = (r) => r.method === 'POST' && r.query.has('uploadId') && r.path.endsWith('/p/big.bin')
  const hold = (r) => completion(r) && putObject(bucket, 'p/big.bin', theirs, { Metadata: { 's3ws-new': '1' } })
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await withProxy({ hold }, async (proxy) => {
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).push()
    assert.equal(pushed.success, false)
    assert.deepEqual(
      pushed.errorDetails.map((e) => e.code),
      ['CONFLICT'],
    )
    assert.match(pushed.errors[0], /another writer's version replaced this one as it was stored/)
    // The confirmation's look, and the conflict's own check that the
    // object is not this upload's (a push killed after S3 stored it).
    assert.equal(
      proxy.count('HEAD', (r) => r.path.endsWith('/p/big.bin')),
      2,
    )
  })
  // The next pull keeps both: S3's at the name, ours beside it.
  const pulled = await sync.pull()
  assert.deepEqual(pulled.conflicts, ['big.bin'])
  assert.equal(md5(readFileSync(path.join(dir, 'big.bin'))), md5(theirs))
  assert.equal(md5(readFileSync(path.join(dir, pulled.conflictCopies[0].copy))), md5(ours))
})

test("an edit pushed over another agent's deletion is created again, unmarked: a third agent that synced the old version takes it as an edit", async () => {
  const bucket = await newBucket()
  await putObject(bucket, 'p/f.txt', 'v1')
  const [a, b, c] = ['a', 'b', 'c'].map((n) => {
    const dir = tmpDir(n)
    return { dir, sync: new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }) }
  })
  for (const x of [a, b, c]) assert.equal((await x.sync.pull()).success, true)
  rmSync(path.join(b.dir, 'f.txt'))
  assert.equal((await b.sync.push()).deletedFiles, 1)
  writeFileSync(path.join(a.dir, 'f.txt'), 'v2 by A')
  const pushed = await a.sync.push()
  assert.deepEqual([pushed.success, pushed.uploadedFiles], [true, 1])
  const pulled = await c.sync.pull()
  assert.equal(pulled.conflicts, undefined)
  assert.equal(readFileSync(path.join(c.dir, 'f.txt'), 'utf8'), 'v2 by A')
})

test('a pull about to replace a synced, unchanged file with an object another writer made as new keeps the file as a conflict copy; an edit of it replaces it', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const ours = randomBuffer(MiB)
  writeFileSync(path.join(dir, 'n.bin'), ours)
  const logs = []
  const logger = { ...quiet(), warn: (m) => logs.push(m) }
  const a = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger })
  assert.equal((await a.push()).uploadedFiles, 1)
  // What a second writer's creation leaves where its condition was checked
  // before this write was stored: its bytes, marked as written new.
  const theirs = randomBuffer(MiB)
  await putObject(bucket, 'p/n.bin', theirs, { Metadata: { 's3ws-new': '1' } })
  const pulled = await a.pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.deepEqual(pulled.conflicts, ['n.bin'])
  assert.equal(md5(readFileSync(path.join(dir, 'n.bin'))), md5(theirs))
  const copy = pulled.conflictCopies[0].copy
  assert.equal(md5(readFileSync(path.join(dir, copy))), md5(ours))
  assert.match(logs.join('\n'), /written as a new file by a writer that never saw the version synced here/)
  // The copy goes up with the next push.
  assert.equal((await a.push()).uploadedFiles, 1)
  assert.equal(md5(await getObject(bucket, `p/${copy}`)), md5(ours))
  // An edit by a writer that knew the synced version (no mark) replaces
  // the file, as ever.
  const edit = randomBuffer(MiB)
  await putObject(bucket, 'p/n.bin', edit)
  const again = await a.pull()
  assert.equal(again.conflicts, undefined)
  assert.equal(md5(readFileSync(path.join(dir, 'n.bin'))), md5(edit))
})
