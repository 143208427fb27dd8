// @ts-check
'use strict'

// The engine's store requests as AWS SDK v3 commands sent through a
// client's `send()`: stand-in clients in users' tests, stubbed clients, and
// real clients with customisations the native client would bypass.

const { Readable } = require('node:stream')

/** @typedef {import('../binding').StoreRequest} StoreRequest */
/** @typedef {import('../binding').StoreReply} StoreReply */
/** @typedef {import('../binding').StoreError} StoreError */
/** @typedef {import('../binding').BodySink} BodySink */
/** @typedef {import('../binding').FileSource} FileSource */
/** @typedef {{ send(command: any): Promise<any> }} Client */
/** @typedef {new (input: any) => { input: any }} CommandClass */

const COMMANDS = ['ListObjectsV2Command', 'GetObjectCommand', 'HeadObjectCommand', 'PutObjectCommand', 'DeleteObjectCommand']

/** @type {Record<string, CommandClass> | undefined} */
let commandClasses

/** The SDK's command classes; without the SDK, classes of the same names and shape. */
function s3Commands() {
  if (!commandClasses) {
    /** @type {Record<string, any>} */
    let sdk
    try {
      sdk = require('@aws-sdk/client-s3')
    } catch {
      sdk = {}
    }
    /** @param {string} name @returns {CommandClass} */
    const standIn = (name) =>
      ({
        // eslint-disable-next-line typescript/no-extraneous-class -- an SDK command class: it only carries `input`
        [name]: class {
          /** @param {any} input */
          constructor(input) {
            this.input = input
          }
        },
      })[name]
    commandClasses = Object.fromEntries(COMMANDS.map((name) => [name, sdk[name] ?? standIn(name)]))
  }
  return commandClasses
}

/** Whether a GetObject/HeadObject output says the ETag is not the MD5 (SSE-KMS, DSSE-KMS, SSE-C). @param {any} out */
const encryptedEtag = (out) => out.ServerSideEncryption === 'aws:kms' || out.ServerSideEncryption === 'aws:kms:dsse' || Boolean(out.SSECustomerAlgorithm)

/** @param {any} out */
const storedMd5 = (out) => {
  const md5 = out.Metadata?.['s3ws-md5']
  return typeof md5 === 'string' ? md5 : undefined
}

/** @param {any} etag */
const etagOf = (etag) => (typeof etag === 'string' ? etag : undefined)

/**
 * What a `send()` rejection says, for the engine's structured error.
 * @param {any} e
 * @returns {StoreError}
 */
function storeError(e) {
  const status = e?.$metadata?.httpStatusCode
  return {
    code: String(e?.name && e.name !== 'Error' ? e.name : (e?.Code ?? e?.code ?? 'Error')),
    status: Number.isInteger(status) ? status : undefined,
    message: String(e?.message ?? e),
  }
}

/** @param {Uint8Array} chunk */
const asBuffer = (chunk) => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))

/**
 * Streams a GetObject Body into the engine's sink, chunk by chunk, waiting
 * for the engine to take each one; destroys the body if the engine stops.
 * @param {any} body
 * @param {BodySink} sink
 */
async function pump(body, sink) {
  try {
    if (typeof body === 'string' || body instanceof Uint8Array) {
      await sink.write(asBuffer(Buffer.from(body)))
    } else if (typeof body[Symbol.asyncIterator] === 'function') {
      for await (const chunk of body) {
        if (!(await sink.write(asBuffer(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)))) {
          body.destroy?.()
          return
        }
      }
    } else if (typeof body.transformToByteArray === 'function') {
      await sink.write(asBuffer(await body.transformToByteArray()))
    } else {
      throw new TypeError('GetObject returned a Body that is not a stream, string or buffer')
    }
    sink.end()
  } catch (e) {
    const err = /** @type {any} */ (e)
    await sink.fail(`${err?.name ?? 'Error'}: ${err?.message ?? err}`)
  }
}

/** A large upload's bytes, read from the engine's checked file handle. @param {FileSource} source */
async function* chunks(source) {
  for (let chunk = await source.read(); chunk; chunk = await source.read()) yield chunk
}

/**
 * @param {Client} client
 * @param {string} bucket
 * @returns {(req: StoreRequest) => Promise<StoreReply>}
 */
function sendStore(client, bucket) {
  const cmds = s3Commands()
  /** @param {any} command @returns {Promise<{ out: any, error?: undefined } | { out?: undefined, error: StoreError }>} */
  const send = async (command) => {
    try {
      return { out: (await client.send(command)) ?? {} }
    } catch (e) {
      return { error: storeError(e) }
    }
  }
  return async (req) => {
    switch (req.op) {
      case 'list': {
        const r = await send(new cmds.ListObjectsV2Command({ Bucket: bucket, Prefix: req.key, MaxKeys: 1000, ContinuationToken: req.token ?? undefined }))
        if (r.error) return { error: r.error }
        const out = r.out
        return {
          objects: (out.Contents ?? [])
            .filter((/** @type {any} */ o) => typeof o?.Key === 'string')
            .map((/** @type {any} */ o) => ({
              key: o.Key,
              size: typeof o.Size === 'number' ? o.Size : undefined,
              etag: etagOf(o.ETag),
              lastModified: o.LastModified instanceof Date ? o.LastModified.getTime() : undefined,
            })),
          // Upstream followed NextContinuationToken alone; stand-ins may omit IsTruncated.
          truncated: Boolean(out.IsTruncated ?? out.NextContinuationToken),
          nextToken: out.NextContinuationToken ?? undefined,
        }
      }
      case 'get': {
        const r = await send(new cmds.GetObjectCommand({ Bucket: bucket, Key: req.key }))
        if (r.error) return { error: r.error }
        if (!r.out.Body) return { error: { code: 'InvalidResponse', message: `GetObject returned no Body for ${req.key}` } }
        if (req.sink) void pump(r.out.Body, req.sink)
        return { etag: etagOf(r.out.ETag), md5: storedMd5(r.out), encryptedEtag: encryptedEtag(r.out) }
      }
      case 'head': {
        const r = await send(new cmds.HeadObjectCommand({ Bucket: bucket, Key: req.key }))
        if (r.error) {
          const notFound = r.error.status === 404 || r.error.code === 'NotFound' || r.error.code === 'NoSuchKey'
          return notFound ? { missing: true } : { error: r.error }
        }
        return { etag: etagOf(r.out.ETag), md5: storedMd5(r.out), encryptedEtag: encryptedEtag(r.out) }
      }
      case 'put': {
        /** @type {Record<string, any>} */
        const input = {
          Bucket: bucket,
          Key: req.key,
          Body: req.body ?? (req.source ? Readable.from(chunks(req.source)) : Buffer.alloc(0)),
          ContentType: req.contentType,
          ContentLength: req.size,
          ContentMD5: req.contentMd5,
          Metadata: req.md5 ? { 's3ws-md5': req.md5 } : undefined,
        }
        if (req.ifMatch) input.IfMatch = req.ifMatch
        if (req.ifNoneMatch) input.IfNoneMatch = '*'
        const r = await send(new cmds.PutObjectCommand(input))
        if (r.error) return { error: r.error }
        return { etag: etagOf(r.out.ETag) }
      }
      case 'delete': {
        /** @type {Record<string, any>} */
        const input = { Bucket: bucket, Key: req.key }
        if (req.ifMatch) input.IfMatch = req.ifMatch
        const r = await send(new cmds.DeleteObjectCommand(input))
        return r.error ? { error: r.error } : {}
      }
      default:
        return { error: { code: 'Unknown', message: `unknown store operation ${req.op}` } }
    }
  }
}

module.exports = { sendStore }
