// @ts-check
'use strict'

// The command line: pull, push, status (dry runs of both), ensure and watch.
// Every option is a flag and an environment variable (containers are
// configured by environment); flags win. Exit codes: 0 success (status:
// nothing wrong), 1 some files failed or conflicted (status: a pull or push
// would), 2 a fatal error or bad usage, 130/143 interrupted by SIGINT/SIGTERM.
// The engine is loaded only to run a command: `--help` and `--version` work
// without the native binary.

const { parseArgs } = require('node:util')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { progressReporter } = require('./progress-line.js')

/**
 * Every option: `env` is its environment variable, `commands` those that
 * take it (all when absent), `arg` what its value is called in the help.
 * @type {Record<string, { type: 'string' | 'boolean', env?: string, commands?: string[], arg?: string, help: string, group: string, multiple?: boolean, short?: string }>}
 */
const OPTIONS = {
  bucket: { type: 'string', env: 'S3WS_BUCKET', arg: 'NAME', group: 'Where', help: 'S3 bucket; s3://BUCKET/PREFIX/ sets both' },
  prefix: { type: 'string', env: 'S3WS_PREFIX', arg: 'PREFIX', group: 'Where', help: 'Key prefix, e.g. users/u1/workspace/ (or s3://BUCKET/PREFIX/)' },
  dir: { type: 'string', env: 'S3WS_DIR', arg: 'PATH', group: 'Where', help: 'Local workspace directory' },
  endpoint: { type: 'string', env: 'S3WS_ENDPOINT', arg: 'URL', group: 'Connection', help: 'S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL_S3)' },
  region: { type: 'string', env: 'S3WS_REGION', arg: 'REGION', group: 'Connection', help: 'AWS region (default: AWS_REGION, then us-east-1)' },
  profile: { type: 'string', env: 'S3WS_PROFILE', arg: 'NAME', group: 'Connection', help: 'AWS profile; it wins over credentials in the environment, as with aws-cli' },
  timeout: { type: 'string', env: 'S3WS_TIMEOUT', arg: 'SECONDS', group: 'Connection', help: 'Give up after this long (default: no limit)' },
  'stall-timeout': {
    type: 'string',
    env: 'S3WS_STALL_TIMEOUT',
    arg: 'MS',
    group: 'Connection',
    help: 'A request with nothing sent or received this long is cut and retried (default 30000)',
  },
  concurrency: { type: 'string', env: 'S3WS_CONCURRENCY', arg: 'N', group: 'Sync', help: 'Parallel transfers, downloads and uploads (default 50 and 10)' },
  ignore: {
    type: 'string',
    multiple: true,
    env: 'S3WS_IGNORE',
    arg: 'PATTERN',
    group: 'Sync',
    help: 'gitignore pattern to skip, after the built-in ones (repeatable; the variable takes them comma-separated)',
  },
  'conflict-policy': { type: 'string', env: 'S3WS_CONFLICT_POLICY', arg: 'POLICY', group: 'Sync', help: 'keep-both (default) or overwrite (last writer wins)' },
  'conditional-writes': { type: 'string', env: 'S3WS_CONDITIONAL_WRITES', arg: 'MODE', group: 'Sync', help: 'auto (default), required (refuse a server that ignores them) or off' },
  'max-delete-percent': {
    type: 'string',
    env: 'S3WS_MAX_DELETE_PERCENT',
    arg: 'N',
    group: 'Sync',
    help: 'Delete nothing when more than N% of the files would go (default 50; 100: no limit)',
  },
  'lock-timeout': { type: 'string', env: 'S3WS_LOCK_TIMEOUT', arg: 'MS', group: 'Sync', help: 'Wait this long for another process syncing the directory (default 300000)' },
  path: {
    type: 'string',
    multiple: true,
    commands: ['ensure', 'restore'],
    arg: 'PATH',
    group: 'Sync',
    help: 'ensure, restore: a workspace path (a file, or a directory as dir/; repeatable)',
  },
  checkpoint: { type: 'string', commands: ['restore'], arg: 'ID', group: 'Checkpoints', help: 'restore: the checkpoint to restore (see log)' },
  at: { type: 'string', commands: ['restore'], arg: 'TIME', group: 'Checkpoints', help: 'restore: the newest checkpoint at or before this ISO-8601 time' },
  from: { type: 'string', commands: ['diff'], arg: 'X', group: 'Checkpoints', help: 'diff: a checkpoint id or an ISO-8601 time' },
  to: { type: 'string', commands: ['diff'], arg: 'Y', group: 'Checkpoints', help: 'diff: a checkpoint id or an ISO-8601 time (default: the directory)' },
  limit: { type: 'string', commands: ['log'], arg: 'N', group: 'Checkpoints', help: 'log: list at most N checkpoints (default 20)' },
  'restore-deleted': { type: 'boolean', commands: ['pull'], group: 'Sync', help: 'pull: bring back files deleted here and not yet pushed' },
  'dry-run': { type: 'boolean', commands: ['pull', 'push', 'restore'], group: 'Sync', help: 'Decide and report, change nothing (pull, push, restore)' },
  debounce: {
    type: 'string',
    env: 'S3WS_DEBOUNCE',
    commands: ['watch'],
    arg: 'MS',
    group: 'Sync',
    help: 'watch: push this long after the last change (default 2000), or five times that after the first while changes keep coming',
  },
  direction: {
    type: 'string',
    env: 'S3WS_DIRECTION',
    commands: ['watch'],
    arg: 'WAY',
    group: 'Sync',
    help: "watch: both (default: push local changes, pull other writers'), push, or pull",
  },
  json: { type: 'boolean', group: 'Output', help: 'Results as JSON on stdout (watch: one line per push and per remote batch), nothing else there' },
  quiet: { type: 'boolean', group: 'Output', help: 'No progress, no summary; errors still go to stderr' },
  'log-level': { type: 'string', env: 'S3WS_LOG_LEVEL', arg: 'LEVEL', group: 'Output', help: 'debug, info, warn (default), error or silent; on stderr' },
  'log-format': { type: 'string', env: 'S3WS_LOG_FORMAT', arg: 'FORMAT', group: 'Output', help: 'text (default) or json: one JSON object a line, for CloudWatch and the like' },
  help: { type: 'boolean', short: 'h', group: 'Output', help: 'This help' },
  version: { type: 'boolean', short: 'v', group: 'Output', help: 'The package version' },
}

const COMMANDS = {
  pull: "Bring S3's changes into the directory (S3 is the source of truth)",
  push: "Persist the directory's changes to S3",
  status: 'What a pull and a push would do (dry runs; nothing changes)',
  ensure: 'Make the --path files current now: a pull of just those (exit 1 if one is not on S3)',
  watch: "Pull, then push changes shortly after they happen and pull other writers' within seconds, until SIGINT/SIGTERM (then a final push)",
  log: 'List the checkpoints (versioned buckets), newest first',
  restore: 'Make S3 and the directory hold a checkpoint again (--checkpoint ID or --at TIME; --path to limit)',
  diff: 'What changed from --from (a checkpoint id or ISO time) to --to (default: the directory)',
}

class UsageError extends Error {}

/** The built-in ignore patterns, from the engine when it loads. */
function defaultIgnores() {
  try {
    return /** @type {string[]} */ (require('../load-binding.js').defaultIgnorePatterns())
  } catch {
    return null
  }
}

function usage() {
  const lines = ['Usage: s3-workspace-sync <command> [s3://BUCKET/PREFIX/] [options]', '', 'Commands:']
  for (const [name, what] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)}  ${what}`)
  for (const group of ['Where', 'Connection', 'Sync', 'Checkpoints', 'Output']) {
    lines.push('', `${group}:`)
    for (const [name, o] of Object.entries(OPTIONS)) {
      if (o.group !== group) continue
      const flag = `--${name}${o.arg ? ` ${o.arg}` : ''}`
      lines.push(`  ${flag.padEnd(26)} ${o.help}${o.env ? ` [${o.env}]` : ''}`)
    }
  }
  const ignores = defaultIgnores()
  lines.push(
    '',
    'Flags win over the environment variables in brackets. Credentials come from the',
    'AWS default chain (AWS_ACCESS_KEY_ID..., AWS_PROFILE, a role).',
    '',
    ignores ? `Always skipped (built-in ignore patterns): ${ignores.join(' ')}` : 'Some names are always skipped (built-in ignore patterns: see the README).',
    'A .syncignore file in the directory adds patterns (gitignore syntax).',
    '',
    'Exit codes: 0 success (status: nothing to fix), 1 some files failed or conflicted',
    '(status: a pull or push would), 2 fatal error or bad usage, 130/143 interrupted.',
  )
  return lines.join('\n')
}

/** Levenshtein distance, for "did you mean". @param {string} a @param {string} b */
function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const here = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = here
    }
  }
  return row[b.length]
}

/** The closest of `names` to `word`, if close enough. @param {string} word @param {string[]} names */
function closest(word, names) {
  const best = names.map((n) => [n, distance(word, n)]).sort((x, y) => Number(x[1]) - Number(y[1]))[0]
  return best && Number(best[1]) <= Math.max(2, Math.floor(word.length / 3)) ? String(best[0]) : undefined
}

/**
 * `s3://bucket/prefix/` → { bucket, prefix } (the prefix may be empty).
 * @param {string} url
 */
function parseS3Url(url) {
  const m = /^s3:\/\/([^/]*)\/?(.*)$/.exec(url)
  if (!m || !m[1]) throw new UsageError(`${JSON.stringify(url)} is not an s3://BUCKET/PREFIX/ address`)
  return { bucket: m[1], prefix: m[2] }
}

/**
 * The bucket and prefix from the flags, an s3:// address (positional, or in
 * either flag) and the environment, checked.
 * @param {{ bucket?: string, prefix?: string }} given
 * @param {string | undefined} url
 */
function bucketAndPrefix(given, url) {
  let { bucket, prefix } = given
  const fromUrl = [url, bucket?.startsWith('s3://') ? bucket : undefined, prefix?.startsWith('s3://') ? prefix : undefined].filter(Boolean)
  if (bucket?.startsWith('s3://')) bucket = undefined
  if (prefix?.startsWith('s3://')) prefix = undefined
  for (const u of fromUrl) {
    const parsed = parseS3Url(/** @type {string} */ (u))
    if (bucket !== undefined && bucket !== parsed.bucket) throw new UsageError(`the bucket ${JSON.stringify(bucket)} and the address ${u} disagree`)
    bucket = parsed.bucket
    if (parsed.prefix) {
      if (prefix !== undefined && prefix !== parsed.prefix && `${prefix}/` !== parsed.prefix)
        throw new UsageError(`the prefix ${JSON.stringify(prefix)} and the address ${u} disagree`)
      prefix = parsed.prefix
    }
  }
  if (!bucket) throw new UsageError('--bucket is required (or s3://BUCKET/PREFIX/, or S3WS_BUCKET)')
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(bucket) || /[/\s]/.test(bucket)) {
    throw new UsageError(`--bucket ${JSON.stringify(bucket)} is not a bucket name (a name such as my-bucket; for a server's address use --endpoint)`)
  }
  if (prefix === undefined || prefix === '') throw new UsageError('--prefix is required (or s3://BUCKET/PREFIX/, or S3WS_PREFIX)')
  if (prefix.startsWith('/')) {
    throw new UsageError(`--prefix ${JSON.stringify(prefix)} starts with '/': S3 keys do not (did you mean ${JSON.stringify(prefix.replace(/^\/+/, ''))}?)`)
  }
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  if (/[\u0000-\u001f\\]/.test(prefix) || prefix.split('/').some((s, i, all) => s === '..' || s === '.' || (s === '' && i < all.length - 1))) {
    throw new UsageError(`--prefix ${JSON.stringify(prefix)} is not a usable key prefix (no '.', '..' or empty segments, backslashes or control characters)`)
  }
  return { bucket, prefix }
}

/**
 * The sections of an AWS config or credentials file.
 * @param {string} file
 * @param {boolean} config
 */
function profilesIn(file, config) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return []
  }
  const names = []
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*\[\s*([^\]]+?)\s*\]\s*$/.exec(line)
    if (!m) continue
    if (!config) names.push(m[1])
    else if (m[1] === 'default') names.push('default')
    else if (m[1].startsWith('profile ')) names.push(m[1].slice('profile '.length).trim())
  }
  return names
}

/**
 * Makes the profile win over credentials in the environment (as aws-cli
 * does), after checking it exists: a missing profile fails up front.
 * @param {string} name
 * @param {NodeJS.ProcessEnv} env
 */
function useProfile(name, env) {
  const home = os.homedir()
  const config = env.AWS_CONFIG_FILE || path.join(home, '.aws', 'config')
  const credentials = env.AWS_SHARED_CREDENTIALS_FILE || path.join(home, '.aws', 'credentials')
  if (![...profilesIn(config, true), ...profilesIn(credentials, false)].includes(name)) {
    throw new UsageError(`the AWS profile ${JSON.stringify(name)} was not found in ${config} or ${credentials}`)
  }
  env.AWS_PROFILE = name
  for (const key of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) delete env[key]
}

/**
 * The command and its settings from the arguments and the environment.
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 */
function parse(argv, env) {
  /** @type {any} */
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) }]),
      ),
    })
  } catch (e) {
    const message = /** @type {Error} */ (e).message
    const flag = /'(--?[^']+)'/.exec(message)?.[1]
    const name = flag?.replace(/^-+/, '').split('=')[0]
    const hint = name !== undefined && !(name in OPTIONS) ? closest(name, Object.keys(OPTIONS)) : undefined
    throw new UsageError(hint ? `unknown option ${flag} (did you mean --${hint}?)` : message.replace(/\. To specify.*$/s, ''))
  }
  const values = parsed.values
  if (values.help || values.version) return { values, command: '' }
  const [command, url, ...rest] = parsed.positionals
  if (!command) throw new UsageError('a command is required: pull, push, status, ensure, watch, log, restore or diff')
  if (!(command in COMMANDS)) {
    const hint = closest(command, Object.keys(COMMANDS))
    throw new UsageError(`unknown command ${JSON.stringify(command)}${hint ? ` (did you mean ${hint}?)` : ''}`)
  }
  if (url !== undefined && !url.startsWith('s3://')) throw new UsageError(`unexpected argument ${JSON.stringify(url)} (an address is s3://BUCKET/PREFIX/)`)
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`)
  for (const [name, o] of Object.entries(OPTIONS)) {
    if (values[name] !== undefined && o.commands && !o.commands.includes(command)) {
      throw new UsageError(`--${name} is for ${o.commands.join(' and ')}${command === 'status' && name === 'dry-run' ? ' (status is a dry run already)' : ''}`)
    }
    if (values[name] === undefined && o.env && env[o.env] !== undefined && env[o.env] !== '') {
      if (o.commands && !o.commands.includes(command)) continue
      values[name] = o.multiple
        ? String(env[o.env])
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : env[o.env]
    }
  }
  /** @param {string} flag @param {number} min @param {number} max */
  const number = (flag, min, max) => {
    const v = values[flag]
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}`)
    return n
  }
  /** @param {string} flag @param {string[]} allowed */
  const choice = (flag, allowed) => {
    const v = values[flag]
    if (v !== undefined && !allowed.includes(v)) throw new UsageError(`--${flag} must be ${allowed.join(', ')}`)
    return v
  }
  if (!values.dir) throw new UsageError('--dir is required (or S3WS_DIR)')
  if (command === 'ensure' && !values.path?.length) throw new UsageError('ensure needs --path PATH (repeatable; a directory as dir/)')
  if (command === 'restore' && (values.checkpoint === undefined) === (values.at === undefined)) throw new UsageError('restore needs --checkpoint ID or --at TIME (one of them)')
  if (command === 'diff' && values.from === undefined) throw new UsageError('diff needs --from X (a checkpoint id or an ISO-8601 time)')
  const { bucket, prefix } = bucketAndPrefix({ bucket: values.bucket, prefix: values.prefix }, url)
  const timeout = number('timeout', 1, 2_147_483)
  return {
    command,
    values,
    bucket,
    prefix,
    concurrency: number('concurrency', 1, 256),
    debounce: number('debounce', 0, 2_147_483_647),
    direction: /** @type {'both' | 'push' | 'pull' | undefined} */ (choice('direction', ['both', 'push', 'pull'])),
    maxDeletePercent: number('max-delete-percent', 0, 100),
    limit: number('limit', 1, 100_000),
    stallTimeoutMs: number('stall-timeout', 1, 2_147_483_647),
    lockTimeoutMs: number('lock-timeout', 0, 2_147_483_647),
    timeoutMs: timeout === undefined ? undefined : timeout * 1000,
    conflictPolicy: choice('conflict-policy', ['keep-both', 'overwrite']),
    conditionalWrites: choice('conditional-writes', ['auto', 'required', 'off']),
    logLevel: choice('log-level', ['debug', 'info', 'warn', 'error', 'silent']) ?? (values.quiet ? 'error' : 'warn'),
    logFormat: choice('log-format', ['text', 'json']) ?? 'text',
  }
}

/**
 * A checkpoint target from the command line: a time when it parses as an
 * ISO-8601 date with a time, else a checkpoint id.
 * @param {string} text
 * @param {string} flag
 * @returns {import('../index').CheckpointTarget}
 */
function targetOf(text, flag) {
  if (/^\d+$/.test(text)) return { checkpoint: text }
  const at = new Date(text)
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(at.getTime())) return { at }
  throw new UsageError(`--${flag} ${JSON.stringify(text)} is neither a checkpoint id nor an ISO-8601 time`)
}

/**
 * One line for a batch of other writers' changes.
 * @param {import('../index').RemoteChange} change
 */
function describeRemote({ paths, deleted, conflicts }) {
  /** @param {string[]} list */
  const some = (list) => (list.length <= 3 ? list.join(', ') : `${list.slice(0, 3).join(', ')} and ${list.length - 3} more`)
  const parts = []
  if (paths.length > 0) parts.push(`${paths.length} file(s) pulled (${some(paths)})`)
  if (deleted.length > 0) parts.push(`${deleted.length} deleted (${some(deleted)})`)
  if (conflicts.length > 0) parts.push(`${conflicts.length} conflict(s), both versions kept (${some(conflicts)})`)
  return `Remote change: ${parts.join('; ')}`
}

/** Engine wording for options, in the CLI's words. @param {string} text */
function cliWords(text) {
  const flags = {
    maxDeletePercent: '--max-delete-percent',
    restoreDeleted: '--restore-deleted',
    conflictPolicy: '--conflict-policy',
    conditionalWrites: '--conditional-writes',
    stallTimeoutMs: '--stall-timeout',
    lockTimeoutMs: '--lock-timeout',
  }
  return text.replace(
    /\b(maxDeletePercent|restoreDeleted|conflictPolicy|conditionalWrites|stallTimeoutMs|lockTimeoutMs)\b(?:: '([\w-]+)')?/g,
    (_, name, value) => `${flags[/** @type {keyof typeof flags} */ (name)]}${value ? ` ${value}` : ''}`,
  )
}

/**
 * A logger writing to stderr: text as the default logger does, or one JSON
 * object a line.
 * @param {string} level
 * @param {string} format
 * @param {NodeJS.WritableStream} stream
 */
function stderrLogger(level, format, stream) {
  const levels = ['debug', 'info', 'warn', 'error', 'silent']
  const min = levels.indexOf(level)
  /** @param {string} name @returns {(message: string, ...args: unknown[]) => void} */
  const at = (name) => {
    if (levels.indexOf(name) < min) return () => {}
    return (message, ...args) => {
      const text = cliWords([message, ...args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === 'object' ? JSON.stringify(a) : String(a)))].join(' '))
      if (format === 'json') stream.write(`${JSON.stringify({ time: new Date().toISOString(), level: name, message: text })}\n`)
      else stream.write(`[S3_WORKSPACE_SYNC] ${new Date().toISOString()} ${name.toUpperCase()} ${text}\n`)
    }
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** @param {any} e @param {NodeJS.WritableStream} stderr */
function printError(e, stderr) {
  const lines = [`error: ${cliWords(String(e?.message ?? e))}`]
  for (const field of ['code', 's3Code', 'statusCode', 'retryable']) if (e?.[field] !== undefined) lines.push(`  ${field}: ${e[field]}`)
  stderr.write(`${lines.join('\n')}\n`)
}

/** @param {import('../index').SyncResult} result */
const exitCodeOf = (result) => (result.success && !result.conflicts?.length ? 0 : 1)

/**
 * @param {string} label
 * @param {import('../index').SyncResult} result
 */
function summary(label, result) {
  const moved = result.downloadedFiles !== undefined ? `${result.transferredFiles} downloaded` : `${result.uploadedFiles} uploaded`
  // The first line says the outcome: a reader (or a log search) need not
  // find the error lines below to learn that something was left undone.
  const outcome = exitCodeOf(result) === 0 ? label : `${label} did not complete`
  const lines = [`${outcome}: ${moved}, ${result.deletedFiles} deleted, ${result.unchangedFiles} unchanged in ${result.duration} ms`]
  for (const c of result.conflicts ?? []) lines.push(`  conflict: ${c}`)
  for (const c of result.conflictCopies ?? []) lines.push(`  conflict copy of ${c.path}: ${c.copy}`)
  for (const w of result.warnings ?? []) lines.push(`  warning (${w.code}): ${cliWords(w.message)}`)
  for (const e of result.errors ?? []) lines.push(`  error: ${cliWords(e)}`)
  return lines.join('\n')
}

/** @param {import('../index').SyncResult} result */
function describePlan(result) {
  const plan = /** @type {import('../index').SyncPlan} */ (result.plan)
  const rows = [
    ['download', plan.download],
    ['delete locally', plan.deleteLocal],
    ['upload', plan.upload],
    ['delete on S3', plan.deleteRemote],
    ['conflict', plan.conflicts],
  ]
  const lines = []
  for (const [what, paths] of /** @type {[string, string[]][]} */ (rows)) for (const p of paths) lines.push(`  ${what.padEnd(14)} ${p}`)
  // What the real call would refuse, and why (the mass-deletion guard).
  for (const e of result.errors ?? []) lines.push(`  refused        ${cliWords(e)}`)
  return lines.length > 0 ? lines.join('\n') : '  (nothing)'
}

/**
 * Runs the command line. Returns the exit code.
 * @param {string[]} argv
 * @param {{ env?: NodeJS.ProcessEnv, stdout?: NodeJS.WriteStream, stderr?: NodeJS.WriteStream, process?: NodeJS.Process, heldSignals?: { signals: NodeJS.Signals[], release(): void } }} [io]
 *   `heldSignals`: signals the program held while it loaded, and how to stop holding them
 */
async function main(argv, io = {}) {
  const env = io.env ?? process.env
  const stdout = io.stdout ?? process.stdout
  const stderr = io.stderr ?? process.stderr
  const proc = io.process ?? process
  let args
  try {
    args = parse(argv, env)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    stderr.write(`error: ${e.message}\nRun s3-workspace-sync --help for the options.\n`)
    return 2
  }
  const { values, command } = args
  if (values.help) {
    stdout.write(`${usage()}\n`)
    return 0
  }
  if (values.version) {
    stdout.write(`${require('../package.json').version}\n`)
    return 0
  }
  const a = /** @type {Required<typeof args>} */ (args)
  if (values.profile) {
    try {
      useProfile(values.profile, env)
    } catch (e) {
      stderr.write(`error: ${/** @type {Error} */ (e).message}\n`)
      return 2
    }
  }
  /** @type {typeof import('../index')} */
  let api
  try {
    api = require('../index.js')
  } catch (e) {
    printError(e, stderr)
    return 2
  }
  const quiet = Boolean(values.quiet || values.json)
  const progress = quiet ? null : progressReporter(stderr)
  let sync
  try {
    sync = new api.S3WorkspaceSync({
      bucket: a.bucket,
      prefix: a.prefix,
      workspaceDir: values.dir,
      endpoint: values.endpoint,
      region: values.region,
      downloadConcurrency: a.concurrency,
      uploadConcurrency: a.concurrency,
      ignorePatterns: values.ignore,
      conflictPolicy: a.conflictPolicy,
      conditionalWrites: a.conditionalWrites,
      maxDeletePercent: a.maxDeletePercent,
      stallTimeoutMs: a.stallTimeoutMs,
      lockTimeoutMs: a.lockTimeoutMs,
      // Warnings as they happen; errors are printed with the result (and
      // counted on the progress line meanwhile).
      logger: { ...stderrLogger(a.logLevel, a.logFormat, stderr), error: () => progress?.failed() },
    })
  } catch (e) {
    printError(e, stderr)
    return 2
  }
  // The first SIGINT/SIGTERM stops the operation (watch: after a final
  // push); a second one cancels that final push too.
  const stop = new AbortController()
  /** @type {NodeJS.Signals | undefined} */
  let signalled
  /** @param {NodeJS.Signals} sig */
  const onSignal = (sig) => {
    if (stop.signal.aborted) void sync.close({ abort: true })
    else {
      signalled = sig
      stop.abort(new Error(`interrupted by ${sig}`))
    }
  }
  proc.on('SIGINT', onSignal)
  proc.on('SIGTERM', onSignal)
  // Signals that came while the program was loading count as if they came now.
  io.heldSignals?.release()
  for (const sig of io.heldSignals?.signals.splice(0) ?? []) onSignal(sig)
  const timer = a.timeoutMs === undefined ? undefined : setTimeout(() => stop.abort(new Error('timeout')), a.timeoutMs)
  // Where the operation stands, for an interruption's message.
  let last = /** @type {import('../index').SyncProgress | undefined} */ (undefined)
  let moved = false
  sync.on('progress', (/** @type {import('../index').SyncProgress} */ p) => {
    last = p
    moved = true
    progress?.update(p)
  })
  // A server that does not answer: said after a few seconds, then now and then.
  const endpoint = values.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL ?? 'AWS S3'
  const startedAt = Date.now()
  const waiting = setInterval(() => {
    if (moved || values.quiet) return
    const s = Math.round((Date.now() - startedAt) / 1000)
    stderr.write(
      `s3-workspace-sync: no answer yet from ${endpoint} for s3://${a.bucket}/${a.prefix} after ${s} s; still trying (each request is tried 4 times, waiting up to --stall-timeout)${a.timeoutMs === undefined ? '; --timeout SECONDS gives up sooner' : ''}\n`,
    )
  }, 5000)
  waiting.unref()
  const out = (/** @type {unknown} */ result, /** @type {string} */ text) => {
    progress?.done()
    if (values.json) stdout.write(`${JSON.stringify(result)}\n`)
    else if (!values.quiet) stdout.write(`${text}\n`)
  }
  try {
    if (command === 'status') {
      const pull = await sync.pull({ dryRun: true, signal: stop.signal })
      const missing = !fs.existsSync(String(values.dir))
      // A directory that does not exist yet has nothing to push: not a failure.
      const push = missing ? null : await sync.push({ dryRun: true, signal: stop.signal })
      const side = (/** @type {import('../index').SyncResult | null} */ r) =>
        r === null ? '  (nothing: the directory does not exist yet)' : r.plan ? describePlan(r) : `  (cannot tell: ${cliWords(r.errors?.[0] ?? '')})`
      out(
        { pull: pull.plan ?? null, push: push?.plan ?? null, errors: [...(pull.errors ?? []), ...(push?.errors ?? [])].map(cliWords) },
        `Pull would:\n${side(pull)}\nPush would:\n${side(push)}`,
      )
      return pull.success && (push === null || push.success) ? 0 : 1
    }
    if (command === 'ensure') {
      const result = await sync.ensure(/** @type {string[]} */ (values.path), { signal: stop.signal })
      const missing = result.missing.length > 0 ? `; not on S3: ${result.missing.join(', ')}` : ''
      out(result, `Ensured ${result.paths.length} path(s): ${result.downloadedFiles} file(s) downloaded${missing}`)
      return result.missing.length > 0 ? 1 : 0
    }
    if (command === 'log') {
      const list = await sync.listCheckpoints({ limit: a.limit ?? 20 })
      if (values.json) stdout.write(`${JSON.stringify(list)}\n`)
      else if (!values.quiet) {
        const rows = list.map((c) => `${c.id.padStart(8)}  ${c.time.toISOString()}  ${c.files} files, ${c.bytes} bytes, ${c.changed} changed`)
        stdout.write(`${rows.length ? rows.join('\n') : 'No checkpoints yet (push once)'}\n`)
      }
      return 0
    }
    if (command === 'diff') {
      const result = await sync.diff(targetOf(String(values.from), 'from'), values.to === undefined ? undefined : targetOf(String(values.to), 'to'))
      const lines = [...result.added.map((p) => `A ${p}`), ...result.modified.map((p) => `M ${p}`), ...result.deleted.map((p) => `D ${p}`)]
      out(result, lines.length ? lines.join('\n') : 'No changes')
      return 0
    }
    if (command === 'restore') {
      const target = values.checkpoint !== undefined ? { checkpoint: String(values.checkpoint) } : targetOf(String(values.at), 'at')
      if ('checkpoint' in target && !/^\d+$/.test(target.checkpoint)) throw new UsageError(`--checkpoint ${JSON.stringify(target.checkpoint)} is not a checkpoint id (see log)`)
      const result = await sync.restore(target, { paths: /** @type {string[] | undefined} */ (values.path), dryRun: Boolean(values['dry-run']), signal: stop.signal })
      const lines = result.plan
        ? [
            `Restore (dry run) would: restore ${result.plan.restore.length}, delete ${result.plan.delete.length}`,
            ...result.plan.restore.map((p) => `  restore ${p}`),
            ...result.plan.delete.map((p) => `  delete ${p}`),
            ...result.plan.conflicts.map((p) => `  conflict ${p}`),
          ]
        : [
            `Restore: ${result.restoredFiles} restored, ${result.deletedFiles} deleted, ${result.unchangedFiles} unchanged in ${result.duration} ms${result.checkpoint ? ` (checkpoint ${result.checkpoint})` : ''}`,
          ]
      for (const c of result.conflictCopies ?? []) lines.push(`  conflict copy of ${c.path}: ${c.copy}`)
      for (const e of result.errors ?? []) lines.push(`  error: ${cliWords(e)}`)
      out(result, lines.join('\n'))
      return result.success ? 0 : 1
    }
    if (command === 'watch') {
      const onPush = (/** @type {import('../index').PushResult} */ result) => {
        progress?.done()
        if (values.json) stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...result })}\n`)
        else if (!values.quiet) stdout.write(`${new Date().toISOString()} ${summary('push', result)}\n`)
      }
      // Other writers' changes, a line per batch applied.
      sync.on('remote-change', (/** @type {import('../index').RemoteChange} */ change) => {
        progress?.done()
        if (values.json) stdout.write(`${JSON.stringify({ time: new Date().toISOString(), remote: change })}\n`)
        else if (!values.quiet) stdout.write(`${new Date().toISOString()} ${describeRemote(change)}\n`)
      })
      const watcher = await sync.watch({ debounceMs: a.debounce, direction: a.direction, onPush, signal: stop.signal })
      if (!quiet) stderr.write(`Watching ${values.dir}; Ctrl-C to stop${a.direction === 'pull' ? '' : ' (a final push runs first)'}\n`)
      await new Promise((resolve) => {
        if (stop.signal.aborted) resolve(undefined)
        else stop.signal.addEventListener('abort', resolve, { once: true })
      })
      const final = await watcher.stop()
      return exitCodeOf(final)
    }
    const dryRun = Boolean(values['dry-run'])
    const restoreDeleted = Boolean(values['restore-deleted'])
    const result = command === 'pull' ? await sync.pull({ dryRun, restoreDeleted, signal: stop.signal }) : await sync.push({ dryRun, signal: stop.signal })
    const label = `${command === 'pull' ? 'Pull' : 'Push'}${dryRun ? ' (dry run)' : ''}`
    // A push that failed as a whole resolves (as upstream): a fatal error here.
    const fatal = !result.success && result.errorDetails?.length === 1 && !result.errorDetails[0].path && result.errorDetails[0].code !== 'MASS_DELETE'
    if (fatal) {
      progress?.done()
      if (values.json) stdout.write(`${JSON.stringify(result)}\n`)
      printError(result.errorDetails?.[0], stderr)
      return 2
    }
    out(result, result.plan ? `${label} would:\n${describePlan(result)}` : summary(label, result))
    return exitCodeOf(result)
  } catch (e) {
    progress?.done()
    const err = /** @type {any} */ (e)
    if (err?.name === 'AbortError' && stop.signal.aborted) {
      const where = last ? `after ${last.current} of ${last.total} files (${last.phase})` : 'before any file moved'
      const why = signalled ? `interrupted ${where}` : `gave up after ${Math.round(/** @type {number} */ (a.timeoutMs) / 1000)} s (--timeout) ${where}`
      if (values.json) stdout.write(`${JSON.stringify({ success: false, error: { message: why, code: signalled ? 'ABORT_ERR' : 'TIMEOUT' } })}\n`)
      stderr.write(`s3-workspace-sync: ${why}; run again to resume\n`)
      return signalled === 'SIGTERM' ? 143 : signalled ? 130 : 2
    }
    if (values.json) {
      stdout.write(
        `${JSON.stringify({ success: false, error: { message: cliWords(String(err?.message)), code: err?.code, s3Code: err?.s3Code, statusCode: err?.statusCode, retryable: err?.retryable } })}\n`,
      )
    }
    printError(e, stderr)
    return 2
  } finally {
    clearTimeout(timer)
    clearInterval(waiting)
    proc.off('SIGINT', onSignal)
    proc.off('SIGTERM', onSignal)
    await sync.close({ abort: true })
  }
}

module.exports = { main, parse, usage, UsageError, OPTIONS, cliWords }
