import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, realpathSync, mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, putObject, tmpDir, readTree, md5, randomBuffer, recordingLogger, startProxy, STATE_DIR, listKeys, settle, quiet, lacks } from './helpers.mjs'

test('cold pull restores nested directories, unicode and space keys, empty files', async () => {
  const bucket = await newBucket()
  const files = {
    'README.md': '# hi',
    'src/index.ts': 'export {}',
    'src/lib/deep/util.ts': 'x',
    'with space/file name.txt': 'spaces',
    '日本語/ファイル.txt': 'unicode',
    'émoji-😀.txt': 'emoji',
    'empty.txt': '',
  }
  await seed(bucket, 'users/u1/ws/', files)
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'users/u1/ws/', workspaceDir: dir, endpoint, logger: quiet() })
  const result = await sync.pull()
  assert.equal(result.success, true)
  assert.equal(result.downloadedFiles, 7)
  assert.equal(result.deletedFiles, 0)
  assert.equal(result.errors, undefined)
  assert.equal(typeof result.duration, 'number')
  assert.deepEqual(readTree(dir), files)
})

test('a 20 MiB file arrives intact', async () => {
  const bucket = await newBucket()
  const big = randomBuffer(20 * 1024 * 1024)
  await putObject(bucket, 'p/big.bin', big)
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p', workspaceDir: dir, endpoint, logger: quiet() })
  const result = await sync.pull()
  assert.equal(result.downloadedFiles, 1)
  assert.equal(md5(readFileSync(path.join(dir, 'big.bin'))), md5(big))
  // No temp file is left next to it.
  assert.deepEqual(readdirSync(dir).sort(), [STATE_DIR, 'big.bin'].sort())
})

test("a mirroring first pull (conflictPolicy: 'overwrite') deletes local-only files and emptied directories, keeps ignored ones", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'keep.txt': 'remote' })
  const dir = tmpDir()
  mkdirSync(path.join(dir, 'stale/deeper'), { recursive: true })
  writeFileSync(path.join(dir, 'stale/deeper/old.txt'), 'old')
  writeFileSync(path.join(dir, 'local-only.txt'), 'gone soon')
  mkdirSync(path.join(dir, 'node_modules/pkg'), { recursive: true })
  writeFileSync(path.join(dir, 'node_modules/pkg/index.js'), 'ignored')
  writeFileSync(path.join(dir, 'debug.log'), 'ignored')
  writeFileSync(path.join(dir, 'notes.secret'), 'ignored by option')
  await settle()
  // The default first pull keeps them (nothing local was ever synced).
  const kept = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, ignorePatterns: ['*.secret'], stateDir: tmpDir('state'), logger: quiet() }).pull()
  assert.deepEqual([kept.success, kept.deletedFiles], [true, 0])
  assert.equal(readFileSync(path.join(dir, 'local-only.txt'), 'utf8'), 'gone soon')
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, ignorePatterns: ['*.secret'], conflictPolicy: 'overwrite', logger: quiet() })
  const result = await sync.pull()
  assert.equal(result.success, true)
  assert.equal(result.deletedFiles, 2)
  assert.deepEqual(readTree(dir), {
    'keep.txt': 'remote',
    'node_modules/pkg/index.js': 'ignored',
    'debug.log': 'ignored',
    'notes.secret': 'ignored by option',
  })
  assert.equal(existsSync(path.join(dir, 'stale')), false)
})

test('folder markers are skipped and ignored remote paths are not downloaded', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { '': '', 'dir/': '', 'dir/a.txt': 'a', 'x.log': 'log', 'node_modules/m.js': 'm' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const result = await sync.pull()
  assert.equal(result.downloadedFiles, 1)
  assert.deepEqual(readTree(dir), { 'dir/a.txt': 'a' })
})

test('a prefix without trailing slash does not take in a neighbouring prefix', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'users/a1/', { 'mine.txt': 'mine' })
  await seed(bucket, 'users/a10/', { 'theirs.txt': 'theirs' })
  await putObject(bucket, 'users/a1-sibling.txt', 'sibling')
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'users/a1', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  assert.deepEqual(readTree(dir), { 'mine.txt': 'mine' })
})

test('a second pull of an unchanged workspace downloads nothing', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b/c.txt': 'c' })
  const proxy = await startProxy()
  try {
    const dir = tmpDir()
    await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(
      proxy.count('GET', (r) => !r.query.has('list-type')),
      2,
    )
    const again = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    // Upstream's count: files made current (both, already identical); none moved.
    assert.deepEqual([again.downloadedFiles, again.transferredFiles, again.unchangedFiles, again.bytesTransferred], [2, 0, 2, 0])
    assert.equal(
      proxy.count('GET', (r) => !r.query.has('list-type')),
      2,
    )
  } finally {
    await proxy.close()
  }
})

test('a listing of more than one page is read whole', { skip: lacks('paged-listing') }, async () => {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < 1005; i++) files[`f${String(i).padStart(4, '0')}.txt`] = `${i}`
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).pull()
  assert.equal(result.downloadedFiles, 1005)
  assert.equal(readdirSync(dir).filter((n) => n !== STATE_DIR).length, 1005)
})

test('the sync base lets a fresh instance skip unchanged files, and never syncs', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b/c.txt': 'c' })
  await putObject(bucket, 'p/sub/.s3ws/base-0000.jsonl', 'hostile')
  await putObject(bucket, 'p/.s3ws/base-0000.jsonl', "the engine's own namespace")
  const dir = tmpDir()
  const { logger, calls } = recordingLogger()
  const first = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger }).pull()
  // A key in a state directory is skipped with a warning, never written;
  // one in the root's `.s3ws/` (the engine's own objects) without a word.
  assert.equal(first.downloadedFiles, 2)
  assert.equal(first.success, true, JSON.stringify(first.errors))
  assert.ok(calls.some((c) => c.level === 'warn' && c.message.includes('p/sub/.s3ws/base-0000.jsonl')))
  assert.ok(!calls.some((c) => c.message.includes('p/.s3ws/base-0000.jsonl')))
  const bases = readdirSync(path.join(dir, STATE_DIR)).filter((n) => /^base-[0-9a-f]{16}\.base$/.test(n))
  assert.equal(bases.length, 1)
  // Compact records (see crates/engine/src/base/codec.rs): whose base it
  // is, then each path, in well under 100 bytes a file.
  const data = readFileSync(path.join(dir, STATE_DIR, bases[0]))
  assert.equal(data.subarray(0, 12).toString(), 's3ws-base 3\n')
  for (const s of [bucket, 'p/', 'a.txt', 'b/c.txt']) assert.ok(data.includes(Buffer.from(s)), s)
  // (The header also names the workspace: its path, device and inode.)
  const header = 12 + 10 + bucket.length + 4 + realpathSync(dir).length + 32
  assert.ok(data.length < header + 2 * 100, `${data.length} bytes`)
  const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  assert.equal(pushed.uploadedFiles, 0) // a fresh instance reads the base: nothing to upload
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/.s3ws/base-0000.jsonl', 'p/a.txt', 'p/b/c.txt', 'p/sub/.s3ws/base-0000.jsonl'])
})

test('an object rewritten (to another size) between the listing and its GET arrives as the newer object, checked, with no integrity error', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'notes.md': 'short', 'other.txt': 'x' })
  let listed
  const afterListing = new Promise((r) => (listed = r))
  // The GET of notes.md waits until the listing is answered and the object rewritten.
  const rewrite = afterListing.then(() => putObject(bucket, 'p/notes.md', 'a much longer version, written by another agent'))
  const proxy = await startProxy({
    hold: (r) => r.query.has('list-type') && (listed(), 0),
    delay: (r) => (r.method === 'GET' && r.path.endsWith('/notes.md') ? 400 : 0),
  })
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const result = await sync.pull()
    await rewrite
    assert.equal(result.success, true, JSON.stringify(result.errorDetails))
    assert.equal(readFileSync(path.join(dir, 'notes.md'), 'utf8'), 'a much longer version, written by another agent')
    // Recorded as that version: the next pull has nothing to do.
    const again = await sync.pull()
    assert.equal(again.transferredFiles, 0)
  } finally {
    await proxy.close()
  }
})
