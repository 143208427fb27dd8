// A store that throttles as S3 does (503 SlowDown above a request rate):
// every file of a pull and of a push still moves, none is given up while
// the operation makes progress. How close to the throttle's own floor:
// bench/throttle.mjs.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { newBucket, seed, getObject, listKeys, tmpDir, quiet, withProxy, isList } from './helpers.mjs'
import { tokenBucket, SLOW_DOWN_XML } from '../scripts/throttle.mjs'

const N = 300
const RATE = 100
const files = Object.fromEntries(Array.from({ length: N }, (_, i) => [`d${i % 7}/f${i}.txt`, `content ${i}`]))

/** A proxy fault passing `selected` requests at `rate` a second, answering the rest SlowDown. */
function throttle(selected, rate = RATE) {
  const bucket = tokenBucket(rate)
  const fault = (r) => (!selected(r) || r.probe || bucket.take() ? undefined : { status: 503, body: SLOW_DOWN_XML })
  return { fault, stats: bucket.stats }
}

test(`a pull through a throttle of ${RATE} GET/s moves all ${N} files`, async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  const { fault, stats } = throttle((r) => r.method === 'GET' && !isList(r))
  await withProxy({ fault }, async (proxy) => {
    const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(pulled.success, true, JSON.stringify(pulled.errors?.slice(0, 3)))
    assert.equal(pulled.downloadedFiles, N)
  })
  assert.ok(stats.slowDown > 0, 'the throttle answered SlowDown')
  for (const [rel, body] of Object.entries(files)) assert.equal(readFileSync(path.join(dir, rel), 'utf8'), body)
})

test(`a push through a throttle of ${RATE} PUT/s moves all ${N} files`, async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  for (const [rel, body] of Object.entries(files)) {
    const full = path.join(dir, rel)
    mkdirSync(path.dirname(full), { recursive: true })
    writeFileSync(full, body)
  }
  const { fault, stats } = throttle((r) => r.method === 'PUT')
  await withProxy({ fault }, async (proxy) => {
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).push()
    assert.equal(pushed.success, true, JSON.stringify(pushed.errors?.slice(0, 3)))
    assert.equal(pushed.uploadedFiles, N)
  })
  assert.ok(stats.slowDown > 0, 'the throttle answered SlowDown')
  assert.equal((await listKeys(bucket, 'p/')).length, N)
  assert.equal((await getObject(bucket, 'p/d3/f10.txt')).toString(), 'content 10')
})
