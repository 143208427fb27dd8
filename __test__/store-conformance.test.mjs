// The engine's store-conformance suite (crates/engine/src/store/conformance.rs)
// run against the JavaScript send() store, as the Rust tests run it against
// the S3 and in-memory stores: the three stores answer alike.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { S3Client } from '@aws-sdk/client-s3'
import native from '../load-binding.js'
import { sendStore } from '../lib/send-store.js'
import { endpoint, newBucket, lacks } from './helpers.mjs'

// The suite is compiled in with the `conformance` Cargo feature only (the
// debug build `npm test` makes); a binary without it (a release build, as
// `npm test -- --prebuilt` runs in CI) rejects every call, before the store
// is asked anything.
const notBuilt = await native
  .storeConformance(() => Promise.reject(new Error('probe')), 'probe')
  .then(
    () => false,
    (e) => /built without the `conformance` feature/.test(e.message),
  )
const skipWithoutSuite = notBuilt && 'this binary was built without the `conformance` Cargo feature (a release build): the suite is not in it'

test('the send() store conforms (a real S3Client driven through send())', { skip: skipWithoutSuite || lacks('conditions') }, async () => {
  const bucket = await newBucket()
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })
  try {
    await native.storeConformance(sendStore(client, bucket), bucket)
  } finally {
    client.destroy()
  }
})

test('the suite catches a store that breaks a rule (a client that ignores If-None-Match)', { skip: skipWithoutSuite }, async () => {
  const bucket = await newBucket()
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })
  const careless = { send: (command) => (delete command.input.IfNoneMatch, client.send(command)) }
  try {
    await assert.rejects(native.storeConformance(sendStore(careless, bucket), bucket), /If-None-Match on an existing key is a conflict/)
  } finally {
    client.destroy()
  }
})
