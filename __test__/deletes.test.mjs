// Deletions in batches: one DeleteObjects request per 1,000 keys, each key
// still conditional on the ETag the sync base knows.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, putObject, tmpDir, quiet, withProxy, listKeys, lacks } from './helpers.mjs'

test('a push deleting 2,100 files sends 3 DeleteObjects requests; an object changed on S3 meanwhile is kept and reported', { skip: lacks('paged-listing') }, async () => {
  const bucket = await newBucket()
  const N = 2100
  const names = Array.from({ length: N }, (_, i) => `d${i % 10}/f${i}.txt`)
  for (let i = 0; i < N; i += 100) await Promise.all(names.slice(i, i + 100).map((n) => putObject(bucket, `p/${n}`, n)))
  await putObject(bucket, 'p/keep.txt', 'keep')
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, maxDeletePercent: 100, logger: quiet() })
  assert.equal((await sync.pull()).downloadedFiles, N + 1)
  for (let d = 0; d < 10; d++) rmSync(path.join(dir, `d${d}`), { recursive: true })
  // Another agent rewrites one of them on S3 after this workspace synced it.
  await putObject(bucket, 'p/d3/f3.txt', 'changed elsewhere')

  await withProxy({}, async (proxy) => {
    const pushing = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, maxDeletePercent: 100, logger: quiet() })
    const pushed = await pushing.push()
    assert.equal(pushed.deletedFiles, N - 1)
    assert.deepEqual(pushed.conflicts, ['d3/f3.txt'])
    const batches = proxy.count('POST', (r) => r.query.has('delete'))
    const singles = proxy.count('DELETE')
    // The once-per-instance probe of whether the server honours each key's
    // ETag (it is not AWS, which documents it).
    assert.equal(proxy.probes.filter((r) => r.method === 'POST').length, 1)
    if (lacks('batch-delete-etag')) {
      // It found the per-key ETag ignored: one conditional DeleteObject
      // per key instead, so the changed object still stays.
      assert.deepEqual([batches, singles], [0, N])
    } else {
      assert.deepEqual([batches, singles], [3, 0])
    }
  })
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/d3/f3.txt', 'p/keep.txt'])
})
