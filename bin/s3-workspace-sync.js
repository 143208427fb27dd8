#!/usr/bin/env node
// @ts-check
'use strict'

// The command line: pull, push, status (both dry runs) and watch, with a
// live progress line on a terminal. Exit codes: 0 success, 1 some files
// failed or conflicted, 2 a fatal error or bad usage.

const { parseArgs } = require('node:util')
const { S3WorkspaceSync, createDefaultLogger } = require('../index.js')
const { progressReporter } = require('../lib/progress-line.js')

const USAGE = `Usage: s3-workspace-sync <command> --bucket B --prefix P --dir D [options]

Commands:
  pull      Bring S3's changes into the directory (S3 is the source of truth)
  push      Persist the directory's changes to S3
  status    What a pull and a push would do (dry runs; nothing changes)
  watch     Pull, then push changes shortly after they happen, until SIGINT/SIGTERM
            (then a final push)

Options:
  --bucket NAME        S3 bucket (required)
  --prefix PREFIX      Key prefix, e.g. users/u1/workspace/ (required)
  --dir PATH           Local workspace directory (required)
  --endpoint URL       S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL_S3)
  --region REGION      AWS region (default: AWS_REGION, then us-east-1)
  --profile NAME       AWS profile from ~/.aws/config (sets AWS_PROFILE)
  --concurrency N      Parallel transfers (downloads and uploads)
  --ignore PATTERN     gitignore pattern to skip (repeatable)
  --dry-run            Decide and report, change nothing (pull, push)
  --restore-deleted    pull: bring back files deleted here and not yet pushed
  --debounce MS        watch: push this long after the last change (default 2000)
  --json               Print one JSON result on stdout, nothing else
  --quiet              Print nothing but errors
  --help               This help
  --version            The package version

Exit codes: 0 success, 1 some files failed or conflicted, 2 fatal error or bad usage.`

const COMMANDS = ['pull', 'push', 'status', 'watch']

class UsageError extends Error {}

/** @param {string[]} argv */
function parse(argv) {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        bucket: { type: 'string' },
        prefix: { type: 'string' },
        dir: { type: 'string' },
        endpoint: { type: 'string' },
        region: { type: 'string' },
        profile: { type: 'string' },
        concurrency: { type: 'string' },
        ignore: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean' },
        'restore-deleted': { type: 'boolean' },
        debounce: { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    })
  } catch (e) {
    throw new UsageError(/** @type {Error} */ (e).message)
  }
  const { values, positionals } = parsed
  if (values.help || values.version) return { values, command: '', concurrency: undefined, debounce: undefined }
  const [command, ...rest] = positionals
  if (!command) throw new UsageError('a command is required')
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`)
  for (const name of ['bucket', 'prefix', 'dir']) if (!values[/** @type {'bucket'} */ (name)]) throw new UsageError(`--${name} is required`)
  const number = (/** @type {string | undefined} */ v, /** @type {string} */ flag, /** @type {number} */ min, /** @type {number} */ max) => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`)
    return n
  }
  if (values['dry-run'] && (command === 'watch' || command === 'status')) {
    throw new UsageError(`--dry-run is for pull and push (${command === 'status' ? 'status is a dry run already' : 'watch always writes'})`)
  }
  if (values.debounce !== undefined && command !== 'watch') throw new UsageError('--debounce is for watch')
  if (values['restore-deleted'] && command !== 'pull') throw new UsageError('--restore-deleted is for pull')
  return {
    command,
    values,
    concurrency: number(values.concurrency, '--concurrency', 1, 256),
    debounce: number(values.debounce, '--debounce', 0, 2_147_483_647),
  }
}

/**
 * Errors on stderr with their structured fields.
 * @param {any} e
 */
function printError(e) {
  const lines = [`error: ${e?.message ?? e}`]
  for (const field of ['code', 's3Code', 'statusCode', 'retryable']) if (e?.[field] !== undefined) lines.push(`  ${field}: ${e[field]}`)
  process.stderr.write(`${lines.join('\n')}\n`)
}

/** @param {import('../index').SyncResult} result */
const exitCodeOf = (result) => (result.success && !result.conflicts?.length ? 0 : 1)

/**
 * @param {string} label
 * @param {import('../index').SyncResult} result
 */
function summary(label, result) {
  const moved = result.downloadedFiles !== undefined ? `${result.transferredFiles} downloaded` : `${result.uploadedFiles} uploaded`
  const lines = [`${label}: ${moved}, ${result.deletedFiles} deleted, ${result.unchangedFiles} unchanged in ${result.duration} ms`]
  for (const c of result.conflicts ?? []) lines.push(`  conflict: ${c}`)
  for (const c of result.conflictCopies ?? []) lines.push(`  conflict copy of ${c.path}: ${c.copy}`)
  for (const w of result.warnings ?? []) lines.push(`  warning (${w.code}): ${w.message}`)
  for (const e of result.errors ?? []) lines.push(`  error: ${e}`)
  return lines.join('\n')
}

/** @param {import('../index').SyncPlan} plan */
function describePlan(plan) {
  const rows = [
    ['download', plan.download],
    ['delete locally', plan.deleteLocal],
    ['upload', plan.upload],
    ['delete on S3', plan.deleteRemote],
    ['conflict', plan.conflicts],
  ]
  const lines = []
  for (const [what, paths] of /** @type {[string, string[]][]} */ (rows)) for (const p of paths) lines.push(`  ${what.padEnd(14)} ${p}`)
  return lines.length > 0 ? lines.join('\n') : '  (nothing)'
}

/**
 * @param {string[]} argv
 * @returns {Promise<number>} the exit code
 */
async function main(argv) {
  let command, values, concurrency, debounce
  try {
    ;({ command, values, concurrency, debounce } = parse(argv))
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    process.stderr.write(`error: ${e.message}\n\n${USAGE}\n`)
    return 2
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  if (values.version) {
    process.stdout.write(`${require('../package.json').version}\n`)
    return 0
  }
  if (values.profile) process.env.AWS_PROFILE = values.profile
  const quiet = Boolean(values.quiet || values.json)
  const sync = new S3WorkspaceSync({
    bucket: /** @type {string} */ (values.bucket),
    prefix: /** @type {string} */ (values.prefix),
    workspaceDir: /** @type {string} */ (values.dir),
    endpoint: values.endpoint,
    region: values.region,
    downloadConcurrency: concurrency,
    uploadConcurrency: concurrency,
    ignorePatterns: values.ignore,
    // Warnings as they happen; errors are printed once, with the result.
    logger: { ...createDefaultLogger(quiet ? 'silent' : 'warn'), error() {} },
  })
  // The first SIGINT/SIGTERM stops the operation (watch: after a final
  // push); a second one cancels that final push too.
  const stop = new AbortController()
  const onSignal = () => {
    if (stop.signal.aborted) void sync.close({ abort: true })
    else stop.abort(new Error('interrupted'))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const progress = quiet ? null : progressReporter(process.stderr)
  if (progress) sync.on('progress', progress.update)
  const out = (/** @type {unknown} */ result, /** @type {string} */ text) => {
    progress?.done()
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
    else if (!values.quiet) process.stdout.write(`${text}\n`)
  }
  try {
    if (command === 'status') {
      const pull = await sync.pull({ dryRun: true, signal: stop.signal })
      const push = await sync.push({ dryRun: true, signal: stop.signal })
      // A side that cannot be planned (say, a push from a directory that
      // does not exist yet) says why instead.
      const side = (/** @type {import('../index').SyncResult} */ r) => (r.plan ? describePlan(r.plan) : `  (cannot tell: ${r.errors?.[0]})`)
      out(
        { pull: pull.plan ?? null, push: push.plan ?? null, errors: [...(pull.errors ?? []), ...(push.errors ?? [])] },
        `Pull would:\n${side(pull)}\nPush would:\n${side(push)}`,
      )
      return pull.success && push.success ? 0 : 1
    }
    if (command === 'watch') {
      const watcher = await sync.watch({ debounceMs: debounce })
      if (!quiet) process.stderr.write(`Watching ${values.dir}; Ctrl-C to stop (a final push runs first)\n`)
      await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }))
      const last = await watcher.stop()
      out(last, summary('Final push', last))
      return exitCodeOf(last)
    }
    const dryRun = Boolean(values['dry-run'])
    const restoreDeleted = Boolean(values['restore-deleted'])
    const result = command === 'pull' ? await sync.pull({ dryRun, restoreDeleted, signal: stop.signal }) : await sync.push({ dryRun, signal: stop.signal })
    const label = `${command === 'pull' ? 'Pull' : 'Push'}${dryRun ? ' (dry run)' : ''}`
    // A push that failed as a whole resolves (as upstream): a fatal error here.
    const fatal = !result.success && result.errorDetails?.length === 1 && !result.errorDetails[0].path
    if (fatal) {
      progress?.done()
      if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
      printError(result.errorDetails?.[0])
      return 2
    }
    out(result, result.plan ? `${label} would:\n${describePlan(result.plan)}` : summary(label, result))
    return exitCodeOf(result)
  } catch (e) {
    progress?.done()
    if (values.json) {
      const err = /** @type {any} */ (e)
      process.stdout.write(`${JSON.stringify({ success: false, error: { message: err?.message, code: err?.code, s3Code: err?.s3Code, statusCode: err?.statusCode, retryable: err?.retryable } })}\n`)
    }
    printError(e)
    return 2
  } finally {
    await sync.close({ abort: true })
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e) => {
    printError(e)
    process.exitCode = 2
  },
)
