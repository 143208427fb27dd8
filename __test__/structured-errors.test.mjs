// Errors a person can act on: stable codes, S3 fields (s3Code, statusCode,
// retryable), the SDK-shaped `cause` upstream users read, one error (not one
// per file) for failures every request would repeat, no Rust Debug output.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3Client } from '@aws-sdk/client-s3'
import { S3WorkspaceSync, S3OperationError } from '../index.js'
import { endpoint, newBucket, tmpDir, quiet, withProxy, listKeys, lacks } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const NO_DEBUG_DUMP = /DispatchFailure\(|ConnectorError \{|ServiceError \{|Some\(|kind: /

/** The fields a caller branches on. */
const fields = (e) => ({ name: e.name, code: e.code, s3Code: e.s3Code, statusCode: e.statusCode, retryable: e.retryable })

for (const mode of ['native', 'send']) {
  test(`a missing bucket (${mode}): S3OperationError with s3Code, statusCode, retryable and an SDK-shaped cause`, async () => {
    const client = mode === 'send' ? new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true }) : undefined
    const sync = new S3WorkspaceSync({
      bucket: 'no-such-bucket-se',
      prefix: 'p/',
      workspaceDir: tmpDir(),
      endpoint,
      s3Client: client,
      s3ClientMode: client ? 'send' : undefined,
      logger: quiet(),
    })
    const e = await sync.pull().catch((err) => err)
    assert.ok(e instanceof S3OperationError)
    assert.deepEqual(fields(e), { name: 'S3OperationError', code: 'S3_OPERATION_ERROR', s3Code: 'NoSuchBucket', statusCode: 404, retryable: false })
    // What upstream users wrote against the SDK's exception.
    assert.equal(e.cause.name, 'NoSuchBucket')
    assert.equal(e.cause.$metadata.httpStatusCode, 404)
    assert.match(e.message, /^Pull failed: /)
    assert.match(e.message, /no-such-bucket-se/)
    assert.doesNotMatch(e.message, NO_DEBUG_DUMP)
    // A push says it once, as data too.
    const pushed = await sync.push()
    assert.equal(pushed.success, false)
    assert.equal(pushed.errors.length, 1)
    assert.deepEqual({ s3Code: pushed.errorDetails[0].s3Code, statusCode: pushed.errorDetails[0].statusCode }, { s3Code: 'NoSuchBucket', statusCode: 404 })
    client?.destroy()
  })
}

test('an unreachable endpoint: NetworkError, retryable, a hint, no Debug dump', async () => {
  const e = await new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), endpoint: 'http://127.0.0.1:1', logger: quiet() }).pull().catch((err) => err)
  assert.deepEqual(fields(e), { name: 'S3OperationError', code: 'S3_OPERATION_ERROR', s3Code: 'NetworkError', statusCode: undefined, retryable: true })
  assert.match(e.message, /could not be reached: check the endpoint option/)
  assert.match(e.message, /Connection refused/)
  assert.doesNotMatch(e.message, NO_DEBUG_DUMP)
})

test('a push whose first requests meet a missing bucket stops there: no upload, one error', async () => {
  const dir = tmpDir()
  for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, `f${i}.txt`), `${i}`)
  const missing = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>`
  await withProxy({ fault: () => ({ status: 404, body: missing }) }, async (proxy) => {
    const pushed = await new S3WorkspaceSync({ bucket: 'gone', prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).push()
    assert.equal(pushed.success, false)
    assert.equal(pushed.errors.length, 1)
    assert.equal(pushed.errorDetails[0].s3Code, 'NoSuchBucket')
    // The requests a push starts with, side by side (the listing, and the
    // once-per-instance look for abandoned uploads and at the versioning):
    // nothing after them.
    const sent = proxy.requests.map((r) => `${r.method} ${r.path}?${[...r.query.keys()].join('&')}`).sort()
    assert.deepEqual(sent, ['GET /gone/?list-type&prefix', 'GET /gone/?uploads&prefix', 'GET /gone/?versioning'])
  })
})

test('wrong credentials: SignatureDoesNotMatch, not retryable, a hint; the secret never shows', { skip: lacks('credentials') }, async () => {
  const bucket = await newBucket()
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(tmpDir())}, endpoint: ${JSON.stringify(endpoint)}, logger: { debug() {}, info() {}, warn() {}, error() {} } })
      .pull().catch((e) => console.log(JSON.stringify({ code: e.code, s3Code: e.s3Code, statusCode: e.statusCode, retryable: e.retryable, message: e.message })))
  `
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, AWS_SECRET_ACCESS_KEY: 'wrong-secret-0123456789' } })
  const out = JSON.parse(r.stdout)
  assert.deepEqual({ ...out, message: undefined }, { code: 'S3_OPERATION_ERROR', s3Code: 'SignatureDoesNotMatch', statusCode: 403, retryable: false, message: undefined })
  assert.match(out.message, /The credentials were refused: check the access key and secret key/)
  assert.doesNotMatch(r.stdout + r.stderr, /wrong-secret-0123456789/)
})

test('no credentials anywhere: CredentialsError with what to set', () => {
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: ${JSON.stringify(tmpDir())}, endpoint: ${JSON.stringify(endpoint)}, logger: { debug() {}, info() {}, warn() {}, error() {} } })
      .pull().catch((e) => console.log(JSON.stringify({ code: e.code, s3Code: e.s3Code, retryable: e.retryable, message: e.message })))
  `
  const env = { ...process.env, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_EC2_METADATA_DISABLED: 'true' }
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete env[k]
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env })
  const out = JSON.parse(r.stdout)
  assert.equal(out.s3Code, 'CredentialsError')
  assert.equal(out.retryable, false)
  assert.match(out.message, /No usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass an s3Client/)
})

test('a failure every request would repeat stops the push after the first: one error, not one per file', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const FILES = 60
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(dir, `f${i}.txt`), `file ${i}`)
  const denied = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
  await withProxy({ fault: (r) => (r.method === 'PUT' ? { status: 403, body: denied } : undefined) }, async (proxy) => {
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, uploadConcurrency: 4, logger: quiet() }).push()
    assert.equal(pushed.success, false)
    assert.equal(pushed.errors.length, 1, pushed.errors.join('\n'))
    assert.deepEqual(
      { code: pushed.errorDetails[0].code, s3Code: pushed.errorDetails[0].s3Code, statusCode: pushed.errorDetails[0].statusCode, retryable: pushed.errorDetails[0].retryable },
      { code: 'S3_OPERATION_ERROR', s3Code: 'AccessDenied', statusCode: 403, retryable: false },
    )
    assert.match(pushed.errors[0], /lack permission/)
    // Only the uploads already in flight were tried.
    assert.ok(proxy.count('PUT') <= 4, `${proxy.count('PUT')} PUTs`)
  })
  // Nothing was recorded as pushed: the next push (permission fixed) sends all.
  const again = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  assert.equal(again.uploadedFiles, FILES)
  assert.equal((await listKeys(bucket, 'p/')).length, FILES)
})

test('a per-file failure is not global: the other files go on', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  mkdirSync(path.join(dir, 'd'))
  for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, 'd', `f${i}.txt`), `file ${i}`)
  const bad = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error</Message></Error>`
  await withProxy({ fault: (r) => (r.method === 'PUT' && r.path.endsWith('/f2.txt') ? { status: 500, body: bad } : undefined) }, async (proxy) => {
    const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() }).push()
    assert.equal(pushed.uploadedFiles, 4)
    assert.equal(pushed.errorDetails.length, 1)
    assert.deepEqual(
      { path: pushed.errorDetails[0].path, s3Code: pushed.errorDetails[0].s3Code, statusCode: pushed.errorDetails[0].statusCode, retryable: pushed.errorDetails[0].retryable },
      { path: 'd/f2.txt', s3Code: 'InternalError', statusCode: 500, retryable: true },
    )
  })
})
