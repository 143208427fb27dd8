// Instant start: the priority subtree is listed on its own and downloaded
// first, `ensure(paths)` jumps a running pull's queue (or pulls just those
// paths), and downloads start before the full listing ends. Orders are
// asserted from the requests a counting proxy saw, not from timings.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync, AbortError } from '../index.js'
import { endpoint, newBucket, putObject, seed, seedMany, tmpDir, readTree, quiet, recordingLogger, startProxy, testServer, admin } from './helpers.mjs'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'

const isList = (r) => r.method === 'GET' && r.query.has('list-type')
const isGet = (r) => r.method === 'GET' && !r.query.has('list-type')
/** The list requests of the whole prefix `p/` (the full listing's pages). */
const fullPages = (proxy) => proxy.requests.filter((r) => isList(r) && r.query.get('prefix') === 'p/')
const bulk = (n, dir = 'bulk') =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`${dir}/d${String(i % 40).padStart(2, '0')}/f${String(i).padStart(5, '0')}.txt`, `bulk ${i}`]))

test('the priority subtree is listed on its own and downloaded before the rest; other downloads start before the listing ends', async () => {
  const bucket = await newBucket()
  const skills = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`.agents/skills/s${i}.md`, `skill ${i}`]))
  // Three listing pages (1,000 keys each on SeaweedFS and moto); skills sort first, so the
  // full listing's first page holds them too: they must still not be fetched twice.
  const files = { ...skills, ...bulk(2500), 'zz.txt': 'last' }
  await seedMany(bucket, 'p/', files)
  // Each page of the full listing is slow; nothing else is. The first page's
  // answer is also held until a skill is asked for (10 s at most), so a slow
  // server answering the subtree's listing cannot reorder what is checked.
  let skillAsked
  const asked = new Promise((r) => (skillAsked = r))
  const isFullPage = (r) => isList(r) && r.query.get('prefix') === 'p/'
  const proxy = await startProxy({
    fault: (r) => void (isGet(r) && r.path.includes('/.agents/skills/') && skillAsked()),
    delay: (r) => (isFullPage(r) ? 300 : 0),
    hold: (r) => isFullPage(r) && !r.query.has('continuation-token') && Promise.race([asked, new Promise((r) => setTimeout(r, 10_000))]),
  })
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, priorityPrefix: '.agents/skills/', logger: quiet() })
    const progress = []
    sync.on('progress', (p) => p.phase === 'download' && progress.push(p))
    const handle = sync.startBackgroundPull()
    await handle.priorityDone
    assert.equal(sync.isPullComplete(), false)
    for (const rel of Object.keys(skills)) assert.ok(existsSync(path.join(dir, rel)), rel)
    const result = await handle.done
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.equal(result.transferredFiles, Object.keys(files).length)
    assert.deepEqual(readTree(dir), files)

    const requests = proxy.requests
    // The subtree had a listing of its own, and its GETs all came before any other.
    assert.equal(requests.filter((r) => isList(r) && r.query.get('prefix') === 'p/.agents/skills/').length, 1)
    const gets = requests.filter(isGet).map((r) => r.path.slice(`/${bucket}/p/`.length))
    assert.equal(gets.length, Object.keys(files).length, 'each file fetched once')
    assert.deepEqual(gets.slice(0, 10).sort(), Object.keys(skills).sort())
    // The skills did not wait for the full listing: their GETs went out before its second page was asked for.
    const pages = fullPages(proxy)
    assert.equal(pages.length, 3)
    const firstSkill = requests.findIndex((r) => isGet(r) && r.path.includes('/.agents/skills/'))
    assert.ok(firstSkill < requests.indexOf(pages[1]), `first skill GET at ${firstSkill}, page 2 at ${requests.indexOf(pages[1])}`)
    // Other files started before the last page was asked for.
    const firstBulk = requests.findIndex((r) => isGet(r) && r.path.includes('/bulk/'))
    assert.ok(firstBulk !== -1 && firstBulk < requests.indexOf(pages[2]), `first bulk GET at ${firstBulk}, last page at ${requests.indexOf(pages[2])}`)
    // The total grew while the listing ran; the percentage never went down and ended at 100.
    assert.ok(progress[0].total < Object.keys(files).length, `first total ${progress[0].total}`)
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].percentage >= progress[i - 1].percentage && progress[i].total >= progress[i - 1].total)
    assert.deepEqual([progress.at(-1).percentage, progress.at(-1).total], [100, Object.keys(files).length])
    // A second pull has nothing to do.
    const again = await sync.pull()
    assert.equal(again.transferredFiles, 0)
  } finally {
    await proxy.close()
  }
})

test('ensure of a deep file during a large cold background pull resolves before the pull ends, and the file is downloaded once', async () => {
  // 20,000 objects; moto answers far slower, so it gets fewer (the order is what is checked).
  const n = testServer === 'moto' ? 3000 : 20000
  const bucket = await newBucket()
  const files = { ...bulk(n), 'zz/deep/nested/target.md': 'the one the agent needs' }
  await seedMany(bucket, 'p/', files)
  const proxy = await startProxy()
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const handle = sync.startBackgroundPull()
    const ensured = await sync.ensure('zz/deep/nested/target.md')
    assert.equal(sync.isPullComplete(), false, 'resolved before the pull ended')
    assert.deepEqual(ensured, { paths: ['zz/deep/nested/target.md'], downloadedFiles: 1, missing: [] })
    assert.equal(readFileSync(path.join(dir, 'zz/deep/nested/target.md'), 'utf8'), 'the one the agent needs')
    // It was listed on its own, not after the full listing reached it.
    assert.equal(proxy.requests.filter((r) => isList(r) && r.query.get('prefix') === 'p/zz/deep/nested/target.md').length, 1)
    const result = await handle.done
    assert.equal(result.success, true)
    assert.equal(result.transferredFiles, n + 1)
    assert.equal(
      proxy.count('GET', (r) => !r.query.has('list-type') && r.path.endsWith('/zz/deep/nested/target.md')),
      1,
    )
    assert.equal(
      proxy.count('GET', (r) => !r.query.has('list-type')),
      n + 1,
    )
  } finally {
    await proxy.close()
  }
})

test('ensure with no pull running is a pull of just those paths: one round of listings, one GET per changed file; local changes are kept', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a/x.txt': 'x1', 'a/y.txt': 'y1', 'b/z.txt': 'z1', 'c.txt': 'c1', 'c.txt.bak': 'not named' })
  const proxy = await startProxy()
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const first = await sync.ensure(['a/', 'c.txt'])
    assert.deepEqual(first, { paths: ['a/', 'c.txt'], downloadedFiles: 3, missing: [] })
    assert.deepEqual(readTree(dir), { 'a/x.txt': 'x1', 'a/y.txt': 'y1', 'c.txt': 'c1' })
    assert.deepEqual(
      proxy.requests
        .filter(isList)
        .map((r) => r.query.get('prefix'))
        .sort(),
      // In one round trip: each path's listing, and whether `a` or `c.txt/…` exist as keys (a clash).
      ['p/a', 'p/a/', 'p/c.txt', 'p/c.txt/'],
    )
    assert.equal(
      proxy.count('GET', (r) => !r.query.has('list-type')),
      3,
    )
    // Current already: a listing, no GET.
    assert.equal((await sync.ensure(['a/', 'c.txt'])).downloadedFiles, 0)
    assert.equal(
      proxy.count('GET', (r) => !r.query.has('list-type')),
      3,
    )
    // Changed on S3: fetched; changed here: kept for the next push.
    await putObject(bucket, 'p/a/x.txt', 'x2')
    writeFileSync(path.join(dir, 'a/y.txt'), 'y local')
    assert.equal((await sync.ensure('a/')).downloadedFiles, 1)
    assert.deepEqual(readTree(dir), { 'a/x.txt': 'x2', 'a/y.txt': 'y local', 'c.txt': 'c1' })
    // The files ensure brought are in the sync base: a full pull fetches only the rest.
    const before = proxy.count('GET', (r) => !r.query.has('list-type'))
    const pulled = await sync.pull()
    assert.equal(pulled.transferredFiles, 2)
    assert.equal(proxy.count('GET', (r) => !r.query.has('list-type')) - before, 2)
    assert.equal(readFileSync(path.join(dir, 'a/y.txt'), 'utf8'), 'y local')
  } finally {
    await proxy.close()
  }
})

test('ensure of paths S3 does not have: reported missing; a synced file deleted on S3 is deleted here; bad paths are refused', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'keep.txt': 'k', 'gone.txt': 'g' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/gone.txt' }))
  const r = await sync.ensure(['nope.txt', 'nothing/', 'gone.txt', 'keep.txt'])
  assert.deepEqual(r, { paths: ['nope.txt', 'nothing/', 'gone.txt', 'keep.txt'], downloadedFiles: 0, missing: ['nope.txt', 'nothing/', 'gone.txt'] })
  assert.deepEqual(readTree(dir), { 'keep.txt': 'k' })
  for (const bad of [[], ['../up.txt'], ['/abs'], [''], [42]]) {
    await assert.rejects(sync.ensure(/** @type {any} */ (bad)), (e) => e.code === 'INVALID_OPTION', JSON.stringify(bad))
  }
})

test('clashes in a priority subtree: a directory it needs that is an object on S3, a key that is also a directory, a case pair: as a plain pull', async () => {
  const bucket = await newBucket()
  // Inside the subtree: `x` and `x/y` (the newer shape wins), and a pair only a case-folding filesystem merges.
  await seed(bucket, 'p/', { '.agents/skills/x': 'old file', '.agents/skills/Readme.md': 'R', '.agents/skills/README.md': 'r' })
  await new Promise((r) => setTimeout(r, 1100))
  await seed(bucket, 'p/', { '.agents/skills/x/y': 'newer dir', 'other.txt': 'o' })
  const run = async (priorityPrefix) => {
    const dir = tmpDir()
    const { logger, calls } = recordingLogger()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, priorityPrefix, logger })
    const result = await sync.pull()
    return { tree: readTree(dir), result, calls }
  }
  const plain = await run(undefined)
  const early = await run('.agents/skills/')
  assert.deepEqual(early.tree, plain.tree)
  // This filesystem is case-sensitive: both names are files (a case-folding one plans the subtree with the full listing).
  assert.deepEqual(plain.tree, { '.agents/skills/x/y': 'newer dir', '.agents/skills/Readme.md': 'R', '.agents/skills/README.md': 'r', 'other.txt': 'o' })
  assert.deepEqual(
    early.result.warnings.map((w) => [w.code, w.path]),
    plain.result.warnings.map((w) => [w.code, w.path]),
  )
  assert.deepEqual(
    early.result.warnings.map((w) => w.code),
    ['SHAPE_CLASH'],
  )

  // A directory the subtree needs is an object: the subtree is planned with the full listing, as a plain pull.
  const clash = await newBucket()
  await seed(clash, 'p/', { '.agents/skills/s.md': 'skill' })
  await new Promise((r) => setTimeout(r, 1100))
  await seed(clash, 'p/', { '.agents': 'a newer file where the directory is' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket: clash, prefix: 'p/', workspaceDir: dir, endpoint, priorityPrefix: '.agents/skills/', logger: quiet() })
  const handle = sync.startBackgroundPull()
  await handle.priorityDone
  const result = await handle.done
  assert.deepEqual(readTree(dir), { '.agents': 'a newer file where the directory is' })
  assert.deepEqual(
    result.warnings.map((w) => [w.code, w.path]),
    [['SHAPE_CLASH', '.agents']],
  )
})

test('a directory the priority subtree needs is a file here: planned with the full listing, the file kept', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { '.agents/skills/s.md': 'skill', 'b.txt': 'b' })
  const dir = tmpDir()
  writeFileSync(path.join(dir, '.agents'), 'a local file in the way')
  // Written well before the pull (a file written after the call would be the agent's current work, left alone).
  await new Promise((r) => setTimeout(r, 1500))
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, priorityPrefix: '.agents/skills/', logger: quiet() })
  const result = await sync.pull()
  assert.equal(result.success, true)
  const tree = readTree(dir)
  assert.equal(tree['.agents/skills/s.md'], 'skill')
  // The local file was set aside under a conflict name, not lost.
  const copies = Object.entries(tree).filter(([rel]) => rel.startsWith('.agents') && !rel.includes('/'))
  assert.deepEqual(
    copies.map(([, body]) => body),
    ['a local file in the way'],
  )
})

test('cancelling ensure leaves the background pull running; a failing pull lets ensure try on its own', async () => {
  const bucket = await newBucket()
  const files = bulk(300)
  await seedMany(bucket, 'p/', files)
  const proxy = await startProxy({ delay: (r) => (isGet(r) ? 20 : 0) })
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 4, logger: quiet() })
    const handle = sync.startBackgroundPull()
    const controller = new AbortController()
    const waiting = sync.ensure('bulk/', { signal: controller.signal })
    setTimeout(() => controller.abort(), 100)
    await assert.rejects(waiting, (e) => e instanceof AbortError)
    assert.equal(sync.isPullComplete(), false)
    const result = await handle.done
    assert.equal(result.success, true)
    assert.deepEqual(readTree(dir), files)
  } finally {
    await proxy.close()
  }
  // A pull that fails (no such bucket) leaves the ensure to its own listing, which says why.
  const failing = new S3WorkspaceSync({ bucket: 'no-such-bucket-ensure', prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  failing.startBackgroundPull()
  await assert.rejects(failing.ensure('a.txt'), (e) => e.code === 'S3_OPERATION_ERROR' && /no-such-bucket-ensure/.test(e.message))
})

test('ensure waits for a download already running for the path, and counts it once', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'big/one.bin': 'x'.repeat(1000), 'small.txt': 's' })
  let release
  const held = new Promise((r) => (release = r))
  const proxy = await startProxy({ hold: (r) => (isGet(r) && r.path.endsWith('/big/one.bin') ? held : 0) })
  try {
    const dir = tmpDir()
    mkdirSync(dir, { recursive: true })
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const handle = sync.startBackgroundPull()
    while (proxy.count('GET', (r) => r.path.endsWith('/big/one.bin')) === 0) await new Promise((r) => setTimeout(r, 20))
    let done = false
    const ensured = sync.ensure('big/').then((r) => ((done = true), r))
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(done, false, 'waits for the running download')
    release()
    assert.deepEqual(await ensured, { paths: ['big/'], downloadedFiles: 1, missing: [] })
    await handle.done
    assert.equal(
      proxy.count('GET', (r) => r.path.endsWith('/big/one.bin')),
      1,
    )
  } finally {
    await proxy.close()
  }
})

test('a workspace wiped by mistake is restored whole, the priority subtree and ensure()d paths too: the next push deletes nothing', async () => {
  const files = { 'AGENTS.md': 'a', ...Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`.agents/skills/s${i}.md`, `s${i}`])) }
  for (let i = 0; i < 16; i++) files[`src/f${i}.ts`] = `f${i}`
  for (const how of ['priority', 'ensure']) {
    const bucket = await newBucket()
    await seed(bucket, 'p/', files)
    const dir = tmpDir()
    const options = { bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet(), ...(how === 'priority' ? { priorityPrefix: '.agents/skills/' } : {}) }
    const sync = new S3WorkspaceSync(options)
    await sync.pull()
    for (const entry of ['AGENTS.md', '.agents', 'src']) rmSync(path.join(dir, entry), { recursive: true, force: true })
    if (how === 'priority') {
      const pulled = await sync.pull()
      assert.ok(pulled.warnings?.some((w) => w.code === 'DELETIONS_RESTORED'))
    } else {
      const { done } = sync.startBackgroundPull()
      await sync.ensure(['AGENTS.md', '.agents/skills/'])
      await done
    }
    assert.deepEqual(readTree(dir), files, how)
    const pushed = await sync.push()
    assert.equal(pushed.deletedFiles, 0, how)
    assert.deepEqual(Object.keys(readTree(dir)).length, Object.keys(files).length)
  }
})

test('local deletions a priority subtree needs go through the mass-deletion guard, as in a plain pull', async () => {
  const run = async (priorityPrefix) => {
    const bucket = await newBucket()
    await seed(bucket, 'p/', { 'skills/a': 'a', 'skills/b': 'b', 'skills/c': 'c', 'x.txt': 'x' })
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, priorityPrefix, logger: quiet() })
    await sync.pull()
    for (const k of ['a', 'b', 'c']) await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `p/skills/${k}` }))
    await seed(bucket, 'p/', { 'skills/a/new': '1', 'skills/b/new': '2', 'skills/c/new': '3' })
    const result = await sync.pull()
    return { tree: readTree(dir), deleted: result.deletedFiles, codes: (result.errorDetails ?? []).map((e) => e.code).sort() }
  }
  const plain = await run(undefined)
  assert.ok(plain.codes.includes('MASS_DELETE'), JSON.stringify(plain))
  assert.deepEqual(await run('skills/'), plain)
})

test('ensure served by a pull: a path whose download failed rejects; a path deleted on S3 is gone when it resolves', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'skills/bad.md': 'will not verify', 'skills/ok.md': 'ok', 'gone.txt': 'g', ...bulk(200) })
  const proxy = await startProxy({
    fault: (r) => (isGet(r) && r.path.endsWith('/skills/bad.md') ? { flip: true } : undefined),
    delay: (r) => (isGet(r) && r.path.includes('/bulk/') ? 20 : 0),
  })
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, priorityPrefix: 'skills/', downloadConcurrency: 4, logger: quiet() })
    await sync.ensure('gone.txt')
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/gone.txt' }))
    const handle = sync.startBackgroundPull()
    await handle.priorityDone
    await assert.rejects(sync.ensure('skills/bad.md'), (e) => e.code === 'INTEGRITY_ERROR')
    await assert.rejects(sync.ensure('skills/'), (e) => e.code === 'INTEGRITY_ERROR')
    const gone = await sync.ensure('gone.txt')
    assert.deepEqual(gone.missing, ['gone.txt'])
    assert.equal(existsSync(path.join(dir, 'gone.txt')), false, 'deleted before ensure resolved')
    assert.equal(sync.isPullComplete(), false)
    await handle.done
  } finally {
    await proxy.close()
  }
})

test('ensure with no pull running decides only the named paths, also when one needs the whole listing; a file is listed by its own key', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'cfg.json': 'c1', 'other1.txt': 'o1', 'other2.txt': 'o2', b: 'b1', ...bulk(1500) })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  await new Promise((r) => setTimeout(r, 1100))
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/other1.txt' }))
  await seed(bucket, 'p/', { 'other2.txt': 'o2 changed', 'new/elsewhere.txt': 'n', 'cfg.json/oops': 'a directory too', b: 'b2' })
  const proxy = await startProxy()
  try {
    const named = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    // `cfg.json` is also a directory on S3 now: the full listing settles it, for that path only.
    await named.ensure('cfg.json')
    const tree = readTree(dir)
    assert.equal(tree['other1.txt'], 'o1')
    assert.equal(tree['other2.txt'], 'o2')
    assert.equal(tree['new/elsewhere.txt'], undefined)
    assert.equal(
      proxy.count('GET', (r) => isGet(r) && !r.path.includes('cfg.json')),
      0,
    )
    // A file root is listed by its key (and `key/`), not as a string prefix of `bulk/…`.
    const before = proxy.requests.length
    assert.deepEqual(await named.ensure('b'), { paths: ['b'], downloadedFiles: 1, missing: [] })
    const lists = proxy.requests.slice(before).filter(isList)
    assert.deepEqual(lists.map((r) => r.query.get('prefix')).sort(), ['p/b', 'p/b/'])
    assert.equal(readFileSync(path.join(dir, 'b'), 'utf8'), 'b2')
  } finally {
    await proxy.close()
  }
})

test('ensure of many paths: the directories they share are checked once, with listings only', async () => {
  const bucket = await newBucket()
  const files = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x/y/z/f${i}.txt`, `${i}`]))
  await seed(bucket, 'p/', files)
  const proxy = await startProxy()
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const r = await sync.ensure(Object.keys(files))
    assert.equal(r.downloadedFiles, 300)
    assert.deepEqual(readTree(dir), files)
    assert.equal(proxy.count('HEAD'), 0)
    const parents = proxy.requests.filter((q) => isList(q) && ['p/x', 'p/x/y', 'p/x/y/z'].includes(q.query.get('prefix')))
    assert.equal(parents.length, 3)
    assert.equal(
      proxy.count('GET', (q) => !q.query.has('list-type')),
      300,
    )
  } finally {
    await proxy.close()
  }
})
