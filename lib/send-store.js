// @ts-check
'use strict'

// The engine's store requests as AWS SDK v3 commands sent through a
// client's `send()`: stand-in clients in users' tests, stubbed clients, and
// real clients with customisations the native client would bypass.

const { Readable } = require('node:stream')

/** @typedef {import('../binding').StoreRequest} StoreRequest */
/** @typedef {import('../binding').StoreAnswer} StoreAnswer */
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

/** @param {any} etag */
const etagOf = (etag) => (typeof etag === 'string' ? etag : undefined)

/**
 * A GetObject/HeadObject output's fields the engine reads, as they came.
 * @param {any} out
 * @returns {StoreAnswer}
 */
const objectAnswer = (out) => ({
  kind: 'object',
  etag: etagOf(out.ETag),
  metadata: out.Metadata && typeof out.Metadata === 'object' ? out.Metadata : undefined,
  sse: typeof out.ServerSideEncryption === 'string' ? out.ServerSideEncryption : undefined,
  sseCustomerAlgorithm: typeof out.SSECustomerAlgorithm === 'string' ? out.SSECustomerAlgorithm : undefined,
})

/**
 * What a `send()` rejection says: its name (or S3 code), status and text.
 * @param {any} e
 * @returns {StoreAnswer}
 */
function failed(e) {
  const status = e?.$metadata?.httpStatusCode
  return {
    kind: 'failed',
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
 * @returns {(req: StoreRequest) => Promise<StoreAnswer>}
 */
function sendStore(client, bucket) {
  const cmds = s3Commands()
  return async (req) => {
    try {
      return await answer(req)
    } catch (e) {
      return failed(e)
    }
  }
  /** @param {any} command */
  async function send(command) {
    return (await client.send(command)) ?? {}
  }
  /** @param {StoreRequest} req @returns {Promise<StoreAnswer>} */
  async function answer(req) {
    switch (req.op) {
      case 'list': {
        const out = await send(new cmds.ListObjectsV2Command({ Bucket: bucket, Prefix: req.prefix, MaxKeys: 1000, ContinuationToken: req.token ?? undefined }))
        return {
          kind: 'listed',
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
        const out = await send(new cmds.GetObjectCommand({ Bucket: bucket, Key: req.key }))
        if (!out.Body) return { kind: 'failed', code: 'InvalidResponse', message: `GetObject returned no Body for ${req.key}` }
        void pump(out.Body, req.sink)
        return objectAnswer(out)
      }
      case 'head':
        return objectAnswer(await send(new cmds.HeadObjectCommand({ Bucket: bucket, Key: req.key })))
      case 'put': {
        /** @type {Record<string, any>} */
        const input = {
          Bucket: bucket,
          Key: req.key,
          Body: req.body ?? (req.source ? Readable.from(chunks(req.source)) : Buffer.alloc(0)),
          ContentType: req.contentType,
          ContentLength: req.size,
          ContentMD5: req.contentMd5,
          Metadata: req.metadata,
        }
        if (req.ifMatch) input.IfMatch = req.ifMatch
        if (req.ifNoneMatch) input.IfNoneMatch = req.ifNoneMatch
        const out = await send(new cmds.PutObjectCommand(input))
        return { kind: 'stored', etag: etagOf(out.ETag) }
      }
      case 'delete': {
        /** @type {Record<string, any>} */
        const input = { Bucket: bucket, Key: req.key }
        if (req.ifMatch) input.IfMatch = req.ifMatch
        await send(new cmds.DeleteObjectCommand(input))
        return { kind: 'deleted' }
      }
    }
  }
}

module.exports = { sendStore }
