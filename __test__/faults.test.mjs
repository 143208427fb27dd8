// Faults and hostile input through a scripted proxy in front of the real server:
// nothing is lost, nothing is written outside the workspace.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import {
  endpoint,
  newBucket,
  seed,
  putObject,
  tmpDir,
  readTree,
  md5,
  contentHash,
  headObject,
  getObject,
  randomBuffer,
  recordingLogger,
  isList,
  listingXml,
  fingerprint,
  listKeys,
  settle,
  quiet,
  withProxy,
  lacks,
} from './helpers.mjs'

const isGet = (r) => r.method === 'GET' && !isList(r)
const slowDown = { status: 503, body: '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>' }
const internal = { status: 500, body: '<?xml version="1.0"?><Error><Code>InternalError</Code><Message>boom</Message></Error>' }

/** Counts attempts per object path and lets a test script the n-th one. */
function perObject(script) {
  const attempts = new Map()
  return (r) => {
    if (!isGet(r)) return undefined
    const n = (attempts.get(r.path) ?? 0) + 1
    attempts.set(r.path, n)
    return script(r.path, n)
  }
}

test('503 SlowDown, 500 and 429 answers are retried and the pull completes', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' })
  const fault = perObject((p, n) => {
    if (p.endsWith('/a.txt') && n <= 2) return slowDown
    if (p.endsWith('/b.txt') && n === 1) return internal
    if (p.endsWith('/c.txt') && n === 1) return { status: 429, body: '<Error><Code>TooManyRequests</Code></Error>' }
    return undefined
  })
  await withProxy({ fault }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.deepEqual(readTree(dir), { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' })
    assert.equal(
      proxy.count('GET', (r) => r.path.endsWith('/a.txt')),
      3,
    )
  })
})

test('an object that keeps failing is a per-file error: the rest lands, its old copy stays', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'good.txt': 'good', 'bad.txt': 'new content' })
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'bad.txt'), 'old content')
  await settle()
  await withProxy({ fault: (r) => (isGet(r) && r.path.endsWith('/bad.txt') ? internal : undefined) }, async (proxy) => {
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(result.success, false)
    assert.equal(result.downloadedFiles, 1)
    assert.equal(result.errors.length, 1)
    assert.match(result.errors[0], /^Failed to download p\/bad\.txt: .*InternalError/)
    assert.deepEqual(readTree(dir), { 'good.txt': 'good', 'bad.txt': 'old content' })
    // Bounded retries: a few attempts, not a loop.
    const attempts = proxy.count('GET', (r) => r.path.endsWith('/bad.txt'))
    assert.ok(attempts >= 2 && attempts <= 4, `${attempts} attempts`)
  })
})

test('a corrupted body is caught by its MD5: retried once flipped, never lands when always flipped', async () => {
  const bucket = await newBucket()
  const body = randomBuffer(64 * 1024)
  await putObject(bucket, 'p/data.bin', body)
  await withProxy({ fault: perObject((p, n) => (n === 1 ? { flip: true } : undefined)) }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.equal(md5(readFileSync(path.join(dir, 'data.bin'))), md5(body))
    assert.equal(
      proxy.count('GET', (r) => r.path.endsWith('/data.bin')),
      2,
    )
  })
  await withProxy({ fault: (r) => (isGet(r) ? { flip: true } : undefined) }, async (proxy) => {
    const dir = tmpDir()
    writeFileSync(path.join(dir, 'data.bin'), 'previous')
    await settle()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(result.success, false)
    assert.match(result.errors[0], /INTEGRITY|MD5/i)
    assert.equal(readFileSync(path.join(dir, 'data.bin'), 'utf8'), 'previous')
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.partial')),
      [],
    )
  })
})

test('large objects are verified whatever hash they carry; a corrupted range never lands', async () => {
  const bucket = await newBucket()
  const body = randomBuffer(40 * 1024 * 1024) // ranged: 5 GETs of 8 MiB
  const src = tmpDir()
  // New: sent unhashed (its parts hashed as they go), the ETag its content
  // hash and the part size in the metadata. Then rewritten at the same
  // size: hashed first (the hash decides whether to send), the content
  // hash in the metadata too.
  writeFileSync(path.join(src, 'ours.bin'), randomBuffer(body.length))
  const push = () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: src, endpoint, logger: quiet() }).push()
  assert.equal((await push()).uploadedFiles, 1)
  writeFileSync(path.join(src, 'ours.bin'), body)
  writeFileSync(path.join(src, 'unhashed.bin'), body)
  const pushed = await push()
  assert.equal(pushed.uploadedFiles, 2, JSON.stringify(pushed.errors))
  assert.equal((await headObject(bucket, 'p/ours.bin')).Metadata['s3ws-md5'], contentHash(body))
  assert.equal((await headObject(bucket, 'p/unhashed.bin')).Metadata['s3ws-part-size'], String(8 * 1024 * 1024))
  // Sent elsewhere in one PUT: only the ETag, the whole MD5. An older
  // version: the whole MD5 in the metadata (both checked in order).
  await putObject(bucket, 'p/single.bin', body)
  await putObject(bucket, 'p/legacy.bin', body, { Metadata: { 's3ws-md5': md5(body) } })
  // With no checksum at all (an older tool): the whole MD5 alone.
  const plain = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' })
  await plain.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/plain.bin', Body: body }))
  plain.destroy()
  const second = (r) => isGet(r) && r.headers.range?.startsWith(`bytes=${8 * 1024 * 1024}-`)
  const names = ['ours.bin', 'unhashed.bin', 'single.bin', 'legacy.bin', 'plain.bin']
  for (const name of names) {
    await withProxy({ fault: (r) => (second(r) && r.path.endsWith(name) ? { flip: true } : undefined) }, async (proxy) => {
      const dir = tmpDir()
      const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
      assert.equal(result.success, false, name)
      assert.equal(result.errors.length, 1, JSON.stringify(result.errors))
      assert.match(result.errors[0], new RegExp(`${name}.*INTEGRITY|integrity check failed`, 'i'))
      // Where the server keeps a whole-object CRC, that is what checks the
      // bytes (no whole MD5): the CRC64NVME our unhashed upload sent, the
      // CRC32 the test's SDK sends with a PUT. Ours, sent hashed: MD5.
      const checkedBy = { 'unhashed.bin': /Crc64Nvme/, 'single.bin': /Crc32IsoHdlc/, 'legacy.bin': /Crc32IsoHdlc/, 'ours.bin': /hash to/, 'plain.bin': /hash to/ }
      if (!lacks('checksums')) assert.match(result.errors[0], checkedBy[name])
      assert.equal(existsSync(path.join(dir, name)), false, `${name} landed`)
      assert.equal(
        proxy.count('GET', (r) => second(r) && r.path.endsWith(name)),
        3,
        'three attempts',
      )
      for (const other of names.filter((n) => n !== name)) {
        assert.equal(md5(readFileSync(path.join(dir, other))), md5(body), other)
      }
      assert.deepEqual(
        readdirSync(dir).filter((n) => n.endsWith('.partial')),
        [],
      )
    })
  }
})

test('a body that breaks off or stalls is asked again from where it stopped, of the same version', async () => {
  const bucket = await newBucket()
  const body = randomBuffer(256 * 1024)
  await putObject(bucket, 'p/r.bin', body)
  await putObject(bucket, 'p/s.bin', body)
  const { ETag } = await headObject(bucket, 'p/r.bin')
  // A connection reset after 1000 bytes, and a body that goes silent after
  // 1000 bytes (cut by the stall timeout), each on the first GET.
  const fault = perObject((p, n) => (n > 1 ? undefined : p.endsWith('/r.bin') ? { truncateAfter: 1000 } : { stallAfter: 1000 }))
  await withProxy({ fault }, async (proxy) => {
    const dir = tmpDir()
    const started = Date.now()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 1500, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.ok(Date.now() - started < 10000)
    for (const name of ['r.bin', 's.bin']) {
      assert.equal(md5(readFileSync(path.join(dir, name))), md5(body), name)
      const gets = proxy.requests.filter((r) => isGet(r) && r.path.endsWith(`/p/${name}`))
      assert.equal(gets.length, 2, name)
      // The rest only, and only if the object is still the one begun.
      assert.equal(gets[1].headers.range, `bytes=1000-${body.length - 1}`, name)
      assert.equal(gets[1].headers['if-match'], ETag, name)
    }
  })
})

test('a stalled range of a large object costs the bytes it still owed, not the object; one rewritten meanwhile comes whole as the newer one', async () => {
  const bucket = await newBucket()
  const MiB = 1024 * 1024
  const body = randomBuffer(40 * MiB) // ranged: 8 MiB, then 4 ranges of 8 MiB
  await putObject(bucket, 'p/big.bin', body)
  const second = (r) => isGet(r) && r.headers.range === `bytes=${8 * MiB}-${16 * MiB - 1}`
  let cut = 0
  await withProxy({ fault: (r) => (second(r) && cut++ === 0 ? { stallAfter: 3 * MiB } : undefined) }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 1000, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.equal(md5(readFileSync(path.join(dir, 'big.bin'))), md5(body))
    const ranges = proxy.requests.filter(isGet).map((r) => r.headers.range)
    // Five ranges, and the rest of the second: nothing asked twice.
    assert.equal(ranges.length, 6, JSON.stringify(ranges))
    assert.ok(ranges.includes(`bytes=${11 * MiB}-${16 * MiB - 1}`), JSON.stringify(ranges))
  })
  // Rewritten (smaller) while a range stalls: the rest is refused
  // (If-Match), and the newer object comes whole; nothing of the two is
  // mixed. Every ask for the rest waits for the rewrite.
  const newer = randomBuffer(MiB)
  const rest = (r) => isGet(r) && r.headers.range === `bytes=${11 * MiB}-${16 * MiB - 1}`
  let rewrite
  cut = 0
  const fault = (r) => (second(r) && cut++ === 0 ? { stallAfter: 3 * MiB } : undefined)
  const delay = (r) => (rest(r) ? (rewrite ??= putObject(bucket, 'p/big.bin', newer)) : 0)
  await withProxy({ fault, delay }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 1000, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.ok(
      proxy.requests.some((r) => rest(r) && r.status === 412),
      JSON.stringify(proxy.requests.filter(isGet).map((r) => [r.headers.range, r.status])),
    )
    assert.equal(md5(readFileSync(path.join(dir, 'big.bin'))), md5(newer))
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.partial')),
      [],
    )
  })
  // Rewritten after the first range, before the third is asked: refused
  // too (it was failing the file with PreconditionFailed).
  await putObject(bucket, 'p/big.bin', body)
  const newest = randomBuffer(40 * MiB)
  const third = (r) => isGet(r) && r.headers.range === `bytes=${16 * MiB}-${24 * MiB - 1}`
  rewrite = undefined
  await withProxy({ delay: (r) => (third(r) ? (rewrite ??= putObject(bucket, 'p/big.bin', newest)) : 0) }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 5000, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.ok(proxy.requests.some((r) => third(r) && r.status === 412))
    assert.equal(md5(readFileSync(path.join(dir, 'big.bin'))), md5(newest))
  })
})

test('an answer of another object to a body asked again (a server that ignores If-Match) never lands: the newer object comes whole', async () => {
  const bucket = await newBucket()
  const body = randomBuffer(256 * 1024)
  await putObject(bucket, 'p/s.bin', body)
  // The first GET stalls after 1000 bytes; the answer to the rest claims
  // another ETag, as a server that ignored the condition after a rewrite
  // would send.
  const fault = perObject((p, n) => (n === 1 ? { stallAfter: 1000 } : n === 2 ? { headers: { etag: '"0123456789abcdef0123456789abcdef"' } } : undefined))
  await withProxy({ fault }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 1500, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.equal(md5(readFileSync(path.join(dir, 's.bin'))), md5(body))
    const gets = proxy.requests.filter(isGet).map((r) => r.headers.range ?? 'whole')
    assert.deepEqual(gets, ['whole', `bytes=1000-${body.length - 1}`, 'whole'])
  })
})

test('a file listed under 8 MiB and rewritten past it before its GET is hashed as what came, and lands', async () => {
  const bucket = await newBucket()
  const MiB = 1024 * 1024
  await putObject(bucket, 'p/grows.bin', randomBuffer(5 * MiB))
  const grown = randomBuffer(9 * MiB)
  let rewrite
  const get = (r) => isGet(r) && r.path.endsWith('/p/grows.bin')
  // Sent in one PUT by the test's client: a whole-body MD5 ETag, and a CRC32.
  await withProxy({ delay: (r) => (get(r) ? (rewrite ??= putObject(bucket, 'p/grows.bin', grown)) : 0) }, async (proxy) => {
    const dir = tmpDir()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.equal(md5(readFileSync(path.join(dir, 'grows.bin'))), md5(grown))
    assert.equal(proxy.count('GET', get), 1)
  })
})

test('a download that comes slowly, or pauses for longer than 5 s, is not cut while bytes keep arriving within the stall timeout', async () => {
  const bucket = await newBucket()
  const slowBody = randomBuffer(2 * 1024 * 1024)
  const pausedBody = randomBuffer(256 * 1024)
  await putObject(bucket, 'p/slow.bin', slowBody)
  await putObject(bucket, 'p/paused.bin', pausedBody)
  const of = (name) => (r) => isGet(r) && r.path.endsWith(`/p/${name}`)
  // 2 MiB at 400 KB/s: each MiB takes 2.6 s, longer than the 1.5 s stall
  // timeout, but bytes arrive every few hundred ms. And an 8 s pause, longer
  // than the AWS SDK's own stalled-stream guard (5 s), shorter than 10 s.
  for (const [name, body, action, stallTimeoutMs] of [
    ['slow.bin', slowBody, { rate: 400 * 1000 }, 1500],
    ['paused.bin', pausedBody, { pauseAfter: 100 * 1000, pauseMs: 8000 }, 10_000],
  ]) {
    await withProxy({ fault: (r) => (of(name)(r) ? action : undefined) }, async (proxy) => {
      const dir = tmpDir()
      const started = Date.now()
      const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs, logger: quiet() })
      const result = await sync.pull()
      assert.equal(result.success, true, `${name}: ${JSON.stringify(result.errors)}`)
      assert.ok(Date.now() - started > 4000, `${name} came slowly`)
      assert.equal(md5(readFileSync(path.join(dir, name))), md5(body))
      // One GET: no attempt was cut and made again.
      assert.equal(proxy.count('GET', of(name)), 1, name)
    })
  }
})

test('a request the server never answers ends its operation with a Timeout: a part whose body is never read, a completion, a GET', async () => {
  const never = () => new Promise(() => {})
  const ours = (r) => !r.path.includes('/.s3ws/')
  const bucket = await newBucket()
  for (const [what, pick] of [
    ['UploadPart', (r) => r.method === 'PUT' && r.query.has('partNumber') && ours(r)],
    ['CompleteMultipartUpload', (r) => r.method === 'POST' && r.query.has('uploadId') && ours(r)],
  ]) {
    const dir = tmpDir()
    writeFileSync(path.join(dir, 'big.bin'), randomBuffer(20 * 1024 * 1024))
    await withProxy({ delay: (r) => (pick(r) ? never() : 0) }, async (proxy) => {
      const pushed = await new S3WorkspaceSync({ bucket, prefix: `${what}/`, workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 500, logger: quiet() }).push()
      assert.equal(pushed.success, false)
      assert.match(pushed.errors.join('\n'), new RegExp(`${what} .* failed: Timeout: HTTP read timeout: nothing sent or received for 500ms`))
    })
  }
  await seed(bucket, 'p/', { 'a.txt': 'x' })
  await withProxy({ delay: (r) => (isGet(r) && r.path.endsWith('/p/a.txt') ? never() : 0) }, async (proxy) => {
    const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint: proxy.endpoint, stallTimeoutMs: 500, logger: quiet() }).pull()
    assert.equal(pulled.success, false)
    assert.match(pulled.errors.join('\n'), /GetObject .* failed: Timeout/)
  })
})

test('a slow but steady upload is not cut by the stall timeout, however long its body takes; one whose body stops moving is', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const big = randomBuffer(9 * 1024 * 1024)
  writeFileSync(path.join(dir, 'big.bin'), big)
  const part1 = (r) => r.method === 'PUT' && r.path.endsWith('/p/big.bin') && r.query.get('partNumber') === '1'
  // The first part's first 3.5 MiB at 1.5 MiB a second: 2.3 s, more than the
  // stall timeout, in steps of about 1.3 MB (the kernel wakes a writer once a
  // third of its send buffer is free).
  const slow = (r) => (part1(r) ? { bodyRate: 1.5 * 1024 * 1024, bodySlowBytes: 3.5 * 1024 * 1024 } : undefined)
  await withProxy({ fault: slow }, async (proxy) => {
    const started = Date.now()
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 1500, logger: quiet() }).push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
    assert.equal(pushed.uploadedFiles, 1)
    assert.ok(Date.now() - started > 2000, 'the body was slow')
    // The part was sent once: no attempt was cut and sent again.
    assert.equal(proxy.count('PUT', part1), 1)
  })
  assert.equal(md5(await getObject(bucket, 'p/big.bin')), md5(big))
  writeFileSync(path.join(dir, 'big.bin'), randomBuffer(9 * 1024 * 1024))
  // A body the server stops reading a megabyte in (the first part's; an
  // update goes in one PUT where the server ignores If-Match on completions,
  // as moto does): the upload ends in a Timeout.
  const first = (r) => r.method === 'PUT' && r.path.endsWith('/p/big.bin') && (r.query.get('partNumber') ?? '1') === '1'
  await withProxy({ fault: (r) => (first(r) ? { bodyStallAfter: 1024 * 1024 } : undefined) }, async (proxy) => {
    const started = Date.now()
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 500, logger: quiet() }).push()
    assert.equal(pushed.success, false)
    assert.match(pushed.errors.join('\n'), /(UploadPart|PutObject) .* failed: Timeout/)
    assert.ok(Date.now() - started < 20_000, `${Date.now() - started} ms`)
    // Each cut attempt's connection (its bytes never read) is let go, with
    // the part it held: the kernel aborts it after the stall timeout.
    if (process.platform === 'linux') {
      const port = Number(new URL(proxy.endpoint).port)
      await eventually(
        () => unsentTo(port) === 0,
        10_000,
        () => `${unsentTo(port)} connections still hold unsent bytes`,
      )
    }
  })
  assert.equal(md5(await getObject(bucket, 'p/big.bin')), md5(big), 'the old version stays')
})

test(
  'an upload whose whole body crawls (300 KB/s, 2 MiB, a 5 s stall timeout) is not cut while the kernel drains it',
  { skip: process.platform !== 'linux' && 'TCP_NOTSENT_LOWAT is set on Linux only' },
  async () => {
    const bucket = await newBucket()
    const dir = tmpDir()
    const body = randomBuffer(2 * 1024 * 1024)
    writeFileSync(path.join(dir, 'slow.bin'), body)
    const put = (r) => r.method === 'PUT' && r.path.endsWith('/p/slow.bin')
    // Without a bound on what the kernel holds unsent, it took the whole body
    // at once and drained it for 7 s with nothing asked of the client: cut.
    // (About 1 s is left to drain after the last bytes are taken; the
    // timeout leaves room for a loaded machine.)
    await withProxy({ fault: (r) => (put(r) ? { bodyRate: 300 * 1000 } : undefined) }, async (proxy) => {
      const started = Date.now()
      const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 5000, logger: quiet() }).push()
      assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
      assert.ok(Date.now() - started > 5000, 'the body was slow')
      assert.equal(proxy.count('PUT', put), 1, 'sent once')
    })
    assert.equal(md5(await getObject(bucket, 'p/slow.bin')), md5(body))
  },
)

/**
 * Throttles what goes to 127.0.0.1:`port` to `rate` bytes a second in the
 * kernel (an HTB class on `lo`, other traffic unlimited), as a slow uplink
 * does: unlike a proxy that reads slowly, the bytes wait in the sender's
 * queue. Returns the undo, or why it cannot (not root, no `tc`, a kernel
 * without HTB or u32).
 * @param {number} port
 * @param {number} rate
 * @returns {(() => void) | string}
 */
function throttleLink(port, rate) {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux'
  const tc = (...args) => execFileSync('tc', args, { stdio: 'pipe' })
  const undo = () => {
    try {
      tc('qdisc', 'del', 'dev', 'lo', 'root')
    } catch {
      // Already gone.
    }
  }
  try {
    tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '20')
  } catch (e) {
    return `tc cannot shape lo here: ${String(e.stderr ?? e.message).trim()}`
  }
  try {
    tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '10gbit')
    tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', `${rate}bps`, 'ceil', `${rate}bps`)
    tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:10')
  } catch (e) {
    undo()
    return `tc cannot shape lo here: ${String(e.stderr ?? e.message).trim()}`
  }
  return undo
}

test('an upload over a slow link (50 KB/s in the kernel) is not cut while what it queued drains', async (t) => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const body = randomBuffer(512 * 1024)
  writeFileSync(path.join(dir, 'slow.bin'), body)
  await withProxy({}, async (proxy) => {
    const undo = throttleLink(Number(new URL(proxy.endpoint).port), 50_000)
    if (typeof undo === 'string') return t.skip(undo)
    try {
      // The last slice of the body is taken with about 300 KB still queued
      // (hyper's buffer, the kernel's unsent and in-flight bytes): 6 s and
      // more of draining with nothing taken. Before, the 2 s stall timeout
      // cut it at the end of every attempt; now the queue falling is life.
      const started = Date.now()
      const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 2000, logger: quiet() }).push()
      assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
      assert.ok(Date.now() - started > 8000, 'the link was slow')
      assert.equal(
        proxy.count('PUT', (r) => r.path.endsWith('/p/slow.bin')),
        1,
        'sent once',
      )
    } finally {
      undo()
    }
  })
  assert.equal(md5(await getObject(bucket, 'p/slow.bin')), md5(body))
})

/**
 * Connections to 127.0.0.1:`port` with bytes still in their send queue
 * (Linux: /proc/net/tcp, each address as hex `IP:PORT`).
 * @param {number} port
 */
function unsentTo(port) {
  const to = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[2] === to && parseInt(f[4]?.split(':')[0] ?? '0', 16) > 0).length
}

/** Resolves once `check()` is true; fails with `why()` after `ms`. */
async function eventually(check, ms, why) {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${why()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

test('a server that stops answering halts the push once no upload has succeeded for twice the stall timeout: the files not tried stay pending', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  for (let i = 0; i < 40; i++) writeFileSync(path.join(dir, `f${i}.txt`), `${i}`)
  const put = (r) => r.method === 'PUT' && r.path.includes('/p/f')
  await withProxy({ delay: (r) => (put(r) ? new Promise(() => {}) : 0) }, async (proxy) => {
    const { logger, calls } = recordingLogger()
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 500, logger }).push()
    assert.equal(pushed.success, false)
    assert.ok(pushed.errorDetails.every((e) => e.s3Code === 'Timeout'))
    // The first ten (the upload concurrency) were tried; no other file.
    const tried = new Set(proxy.requests.filter(put).map((r) => r.path))
    assert.equal(tried.size, 10, [...tried].join(' '))
    // Each file is named: the ten that timed out, the thirty not tried.
    assert.equal(pushed.errorDetails.length, 40)
    assert.deepEqual(new Set(pushed.errorDetails.map((e) => e.path)).size, 40)
    const untried = pushed.errorDetails.filter((e) => /not tried: the server stopped answering/.test(e.message))
    assert.equal(untried.length, 30)
    assert.ok(untried.every((e) => !tried.has(`/${bucket}/p/${e.path}`)))
    const stopped = calls.filter((c) => c.level === 'error' && /^Stopped: .*each file it left is named/.test(c.message))
    assert.equal(stopped.length, 1, JSON.stringify(calls))
  })
  const again = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  assert.equal(again.success, true, JSON.stringify(again.errors))
  assert.equal((await listKeys(bucket, 'p/')).filter((k) => !k.includes('/.s3ws/')).length, 40)
  // A pull the same: the files not tried are named, and the next pull gets them.
  const get = (r) => isGet(r) && r.path.includes('/p/f')
  const there = tmpDir()
  await withProxy({ delay: (r) => (get(r) ? new Promise(() => {}) : 0) }, async (proxy) => {
    const pulled = await new S3WorkspaceSync({
      bucket,
      prefix: 'p/',
      workspaceDir: there,
      endpoint: proxy.endpoint,
      stallTimeoutMs: 500,
      downloadConcurrency: 10,
      logger: quiet(),
    }).pull()
    assert.equal(pulled.success, false)
    const tried = new Set(proxy.requests.filter(get).map((r) => r.path))
    assert.equal(tried.size, 10, [...tried].join(' '))
    assert.equal(pulled.errorDetails.length, 40)
    assert.equal(pulled.errorDetails.filter((e) => /not tried/.test(e.message)).length, 30)
    assert.ok(pulled.errorDetails.every((e) => e.s3Code === 'Timeout' && e.path.startsWith('f')))
  })
  const next = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: there, endpoint, logger: quiet() }).pull()
  assert.equal(next.success, true, JSON.stringify(next.errors))
  assert.equal(readdirSync(there).filter((n) => n.startsWith('f')).length, 40)
})

/** A workspace with local work, and a pull through `fault` that must reject and change nothing. */
async function assertListingRejected(bucket, fault, pattern) {
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'local-work.txt'), 'keep me')
  await withProxy({ fault }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    await assert.rejects(sync.pull(), (e) => e.code === 'S3_OPERATION_ERROR' && pattern.test(e.message))
    assert.deepEqual(readTree(dir), { 'local-work.txt': 'keep me' })
    assert.equal(
      proxy.count('GET', (r) => !isList(r)),
      0,
    )
    assert.equal(proxy.count('PUT') + proxy.count('DELETE'), 0)
  })
}

test('a download that keeps moving is no silence: one request never answered does not stop the rest of the pull', async () => {
  const bucket = await newBucket()
  const big = randomBuffer(3 * 1024 * 1024)
  await putObject(bucket, 'p/a-big.bin', big)
  const names = Array.from({ length: 12 }, (_, i) => `f${String(i).padStart(2, '0')}.txt`)
  await seed(bucket, 'p/', Object.fromEntries(names.map((n) => [n, `small ${n}`])))
  const of = (name) => (r) => isGet(r) && r.path.endsWith(`/p/${name}`)
  // The big file at 500 KB/s (6 s) in one slot, the never answered one in
  // the other (its attempts time out in about 5 s): no transfer succeeds for
  // longer than twice the stall timeout, but bytes keep moving.
  const slow = (r) => (of('a-big.bin')(r) ? { rate: 500 * 1000 } : undefined)
  const never = (r) => (of('f00.txt')(r) ? new Promise(() => {}) : 0)
  await withProxy({ fault: slow, delay: never }, async (proxy) => {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, stallTimeoutMs: 1000, downloadConcurrency: 2, logger: quiet() })
    const result = await sync.pull()
    assert.deepEqual(
      result.errorDetails.map((e) => [e.path, e.s3Code]),
      [['f00.txt', 'Timeout']],
    )
    assert.doesNotMatch(result.errors.join('\n'), /not tried/)
    assert.equal(result.downloadedFiles, 12)
    assert.equal(md5(readFileSync(path.join(dir, 'a-big.bin'))), md5(big))
  })
})

test('listing faults reject the pull and delete nothing', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'x.txt': 'x' })
  const page1 = (nextToken) => ({ status: 200, body: listingXml({ bucket, prefix: 'p/', objects: [{ key: 'p/x.txt', size: 1 }], truncated: true, nextToken }) })
  // An error on the second page.
  await assertListingRejected(bucket, (r) => (isList(r) ? (r.query.has('continuation-token') ? internal : page1('t1')) : undefined), /InternalError/)
  // A truncated page without a continuation token.
  await assertListingRejected(bucket, (r) => (isList(r) ? page1(undefined) : undefined), /continuation token/)
  // The same continuation token again and again.
  await assertListingRejected(bucket, (r) => (isList(r) ? page1('same') : undefined), /continuation token/)
})

const HOSTILE_KEYS = [
  'p/../escape.txt',
  'p/../../../../tmp/escape2.txt',
  'p/./dot.txt',
  'p/a//b.txt',
  'p//abs.txt',
  'p/back\\slash.txt',
  'p/tab\there.txt',
  `p/${'x'.repeat(256)}`,
  'p/clash',
  'p/clash/inner.txt',
  'p/sub/.s3ws/state.json',
  'p/sub/.s3ws-0123456789abcdef.partial',
  'q/outside-prefix.txt',
  'p10/neighbour.txt',
]
// Names reserved for the engine's state below the prefix's root; `.s3ws/` at
// the root is the engine's own (probes), skipped without a word.
const RESERVED_KEYS = ['p/sub/.s3ws/state.json', 'p/sub/.s3ws-0123456789abcdef.partial']

test('hostile keys are never written, each is reported, and they block no other path', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'ok.txt': 'fine', 'clash/inner.txt': 'a' })
  // The workspace sits deep in a tree whose every other file must stay as it is.
  const root = tmpDir('hostile')
  mkdirSync(path.join(root, 'canary'))
  writeFileSync(path.join(root, 'canary', 'secret.txt'), 'canary')
  writeFileSync(path.join(root, 'sibling.txt'), 'x')
  const dir = path.join(root, 'a', 'b', 'ws')
  mkdirSync(dir, { recursive: true })
  const outsideWs = () => Object.fromEntries(Object.entries(fingerprint(root)).filter(([p]) => !p.startsWith('a/b/ws/')))
  const before = outsideWs()
  writeFileSync(path.join(dir, 'local-only.txt'), 'mine')
  await settle()
  const objects = [...HOSTILE_KEYS.map((key) => ({ key })), { key: 'p/ok.txt', size: 4, etag: md5(Buffer.from('fine')) }]
  const fault = (r) => (isList(r) ? { status: 200, body: listingXml({ bucket, prefix: 'p/', objects }) } : undefined)
  await withProxy({ fault }, async (proxy) => {
    const { logger, calls } = recordingLogger()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger }).pull()
    assert.equal(result.success, false)
    assert.equal(result.downloadedFiles, 2) // ok.txt and clash/inner.txt
    // A first sync deletes nothing local (the local-only file stays for the next push).
    assert.equal(result.deletedFiles, 0)
    const reported = result.errors.join('\n')
    for (const key of HOSTILE_KEYS.filter((k) => !k.startsWith('p/clash') && !RESERVED_KEYS.includes(k))) {
      assert.ok(reported.includes(`Failed to download ${key}:`), `${JSON.stringify(key)} not reported in\n${reported}`)
    }
    // A key that is also a directory is resolved by rule (the newer shape
    // wins; here the directory, on a tie), with a warning, not an error.
    assert.ok(
      result.warnings.some((w) => w.code === 'SHAPE_CLASH' && w.path === 'clash'),
      JSON.stringify(result.warnings),
    )
    // Names reserved for the engine's state are skipped with a warning.
    for (const key of RESERVED_KEYS) {
      assert.ok(
        calls.some((c) => c.level === 'warn' && c.message.includes(key)),
        `${key} not logged`,
      )
    }
    assert.deepEqual(readTree(dir), { 'ok.txt': 'fine', 'clash/inner.txt': 'a', 'local-only.txt': 'mine' })
    // Only the safe keys were ever fetched.
    const fetched = proxy.requests.filter(isGet).map((r) => r.path)
    assert.ok(
      fetched.every((p) => p.endsWith('/p/ok.txt') || p.endsWith('/p/clash/inner.txt')),
      fetched.join(' '),
    )
    assert.equal(proxy.count('PUT') + proxy.count('DELETE'), 0)
  })
  assert.deepEqual(outsideWs(), before)
  assert.equal(existsSync(path.join(dir, '..', 'escape.txt')), false)
  assert.equal(existsSync('/tmp/escape2.txt'), false)
})

test('a symlink in the workspace is never followed when writing', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'd/x.txt': 'payload', 'plain.txt': 'plain' })
  const outside = tmpDir('outside')
  const before = fingerprint(outside)
  const dir = tmpDir()
  symlinkSync(outside, path.join(dir, 'd'))
  const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: new URL(process.env.S3WS_TEST_ENDPOINT).origin, logger: quiet() }).pull()
  assert.equal(result.success, false)
  assert.match(result.errors.join('\n'), /p\/d\/x\.txt:.*symbolic link/)
  assert.deepEqual(fingerprint(outside), before)
  assert.equal(readFileSync(path.join(dir, 'plain.txt'), 'utf8'), 'plain')
})

test('instances on one workspace take turns across instances; lockTimeoutMs bounds the wait', async () => {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < 8; i++) files[`f${i}.txt`] = `${i}`
  await seed(bucket, 'p/', files)
  await withProxy({ delay: (r) => (isGet(r) ? 150 : 0) }, async (proxy) => {
    const dir = tmpDir()
    const first = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 2, logger: quiet() })
    const running = first.pull()
    await new Promise((r) => setTimeout(r, 100))
    const impatient = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, lockTimeoutMs: 0, logger: quiet() })
    const started = Date.now()
    await assert.rejects(impatient.pull(), (e) => e.code === 'WORKSPACE_BUSY')
    assert.ok(Date.now() - started < 1000, 'did not fail fast')
    const { logger, calls } = recordingLogger()
    const second = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger })
    const waiting = second.push() // waits for the first instance's pull, then finds nothing to do
    const pushedMeanwhile = first.push() // queued behind the pull on the same instance
    assert.equal((await running).downloadedFiles, 8)
    for (const pushed of [await pushedMeanwhile, await waiting]) {
      assert.deepEqual([pushed.success, pushed.uploadedFiles, pushed.deletedFiles], [true, 0, 0])
    }
    assert.ok(calls.some((c) => /Waiting for another instance/.test(c.message)))
    assert.equal((await second.pull()).success, true)
  })
})

test('a large file that changes while it uploads is reported, never recorded as synced', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const file = path.join(dir, 'big.bin')
  writeFileSync(file, randomBuffer(20 * 1024 * 1024))
  let changed = false
  const delay = (r) => {
    if (r.method === 'POST' && r.query.has('uploads') && !changed) {
      changed = true
      writeFileSync(file, randomBuffer(20 * 1024 * 1024)) // the agent rewrites it mid-upload
      return 200
    }
    return 0
  }
  await withProxy({ delay }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const first = await sync.push()
    assert.equal(first.success, false)
    assert.match(first.errors.join('\n'), /changed while it was uploaded/)
    assert.deepEqual(await listKeys(bucket, 'p/'), [])
    const second = await sync.push()
    assert.equal(second.success, true, JSON.stringify(second.errors))
    assert.equal(second.uploadedFiles, 1)
  })
})

test('a server down during the first push is not taken for one that ignores conditional writes: the next push sends them again', async () => {
  const bucket = await newBucket()
  let down = true
  await withProxy({ fault: () => (down ? { status: 503, body: '<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>' } : undefined) }, async (proxy) => {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    writeFileSync(path.join(dir, 'a.txt'), 'a')
    const failed = await sync.push()
    assert.equal(failed.success, false)
    assert.ok(!(failed.warnings ?? []).some((w) => w.code === 'STORE_CONDITION_IGNORED'), JSON.stringify(failed.warnings))
    down = false
    const pushed = await sync.push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errorDetails))
    assert.ok(!(pushed.warnings ?? []).some((w) => w.code === 'STORE_CONDITION_IGNORED'), JSON.stringify(pushed.warnings))
    // The upload went with its condition (a new file: If-None-Match).
    const put = proxy.requests.findLast((r) => r.method === 'PUT' && r.path.endsWith('/p/a.txt'))
    assert.equal(put?.headers['if-none-match'], '*')
  })
})
