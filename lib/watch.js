// @ts-check
'use strict'

// `watch()`: pull, then keep the workspace live both ways. Local changes
// are pushed as they happen (file-system notifications, with a periodic
// rescan as a safety net); other instances' pushes are pulled as their
// change journal shows them (one HEAD a poll), and a full pull now and then
// catches writers that are not this package.

const { readdirSync, watch } = require('node:fs')
const path = require('node:path')
const { checkWatchOptions } = require('./options.js')
const { mergePushes, nothingPushed } = require('./result.js')

/** @typedef {import('../index').PullResult} PullResult */
/** @typedef {import('../index').PushResult} PushResult */
/** @typedef {import('../index').OperationOptions} OperationOptions */
/** @typedef {import('../index').WatchOptions} WatchOptions */
/** @typedef {import('../index').Watcher} Watcher */
/** @typedef {import('../index').RemoteChange} RemoteChange */

/**
 * A pull of other instances' changes, as the engine reports it.
 * @typedef {object} RemotePull
 * @property {string[]} written paths downloaded
 * @property {string[]} removed paths deleted here
 * @property {string[]} conflicts paths both sides changed (both versions kept)
 * @property {{ path: string, copy: string }[]} copies the conflict copies it made
 * @property {number} files files the pull saw (downloaded or already in sync)
 */

/**
 * What `watch()` needs of the instance it watches for.
 * @typedef {object} Watched
 * @property {(options?: OperationOptions) => Promise<PullResult>} pull
 * @property {() => Promise<PushResult>} push
 * @property {(make: boolean) => Promise<void>} follow starts following the prefix's change journal, made when missing if `make` (rejects when it cannot be read)
 * @property {(check: { whole?: boolean, paths?: string[], signal: AbortSignal }) => Promise<RemotePull | null>} pullRemoteChanges other instances' changes since the last journal check (`null`: none); `whole`: a full pull; `paths`: those paths
 * @property {(change: RemoteChange) => void} remoteChanged emits `remote-change`
 * @property {(error: Error, first: boolean) => void} remoteFailed reports a failed remote check (`first` of an outage)
 * @property {(message: string) => void} info logs
 * @property {(e: unknown, who: string) => void} callbackThrew reports a throwing user callback (once per instance)
 * @property {string} workspaceDir
 * @property {string | undefined} stateDir the `stateDir` option: when unset, the engine's `.s3ws` sits in the workspace
 */

/** A periodic rescan under `watch()`, for changes notifications missed. */
const RESCAN_MS = 30_000
/**
 * An agent that never stops writing still has its work pushed: at the
 * latest this many debounce windows after the first change not yet pushed
 * (10 s by default). Without it, every change put the push off again.
 */
const MAX_WAIT_DEBOUNCES = 5
/**
 * By default the safety-net full pull waits at least this long per 1,000
 * files (a listing page each): 10 pages a minute beside the journal's 48
 * HEADs keeps an idle watcher under one request a second.
 */
const FULL_CHECK_MS_PER_PAGE = 6_000
/** The longest wait between remote checks while the server does not answer. */
const MAX_BACKOFF_MS = 30_000
/** Without the journal (it could not be read), how often to try again. */
const FOLLOW_RETRY_MS = 30_000
/**
 * How many times a stop whose push found files changed on S3 pulls them
 * (both versions kept) and pushes again: once settles it unless the agent
 * or another writer is still at those files.
 */
const STOP_CONFLICT_ROUNDS = 2

/**
 * Pulls, then keeps the workspace live: a push `debounceMs` after the
 * last local change (or `MAX_WAIT_DEBOUNCES` times that after the first
 * one, while changes keep coming), a pull of what other instances push (polled every
 * `pollMs`), a full pull every `fullCheckMs` or more; never two
 * operations at once. `stop()` (or aborting `signal`) stops watching and
 * resolves after a final push.
 * @param {Watched} sync
 * @param {WatchOptions} [options]
 * @returns {Promise<Watcher>}
 */
async function watchWorkspace(sync, options) {
  const { debounceMs, onPush, direction, pollMs, fullCheckMs } = checkWatchOptions(options)
  // Given: as given. By default, longer for a larger workspace.
  const scaled = options?.fullCheckMs === undefined
  const pushing = direction !== 'pull'
  const pulling = direction !== 'push'
  const signal = options?.signal
  const state = {
    timer: /** @type {NodeJS.Timeout | undefined} */ (undefined),
    stopped: false,
    chain: /** @type {Promise<unknown>} */ (Promise.resolve()),
    pushes: 0,
  }
  /**
   * Runs `op` after every operation queued before it.
   * @template T
   * @param {() => Promise<T>} op
   * @returns {Promise<T>}
   */
  const queued = (op) => {
    const next = state.chain.then(op)
    state.chain = next.catch(() => {})
    return next
  }
  /** @type {ReturnType<typeof followRemote> | undefined} */
  let remote
  /** Pushes running or queued. @type {Set<Promise<PushResult>>} */
  const unfinished = new Set()
  /** @returns {Promise<PushResult>} */
  const pushNow = () => {
    const push = queued(async () => {
      state.pushes++
      const result = await sync.push()
      // Changed on S3 since this side synced them: pulled next (both
      // versions kept), not left to the next full check.
      if (result.conflicts?.length) remote?.conflicted(result.conflicts)
      try {
        onPush?.(result)
      } catch (e) {
        sync.callbackThrew(e, 'An onPush callback')
      }
      return result
    })
    unfinished.add(push)
    const done = () => void unfinished.delete(push)
    push.then(done, done)
    return push
  }
  /**
   * The push a stop ends with, after what is queued (none for a
   * follower), and with it the pushes it waited for, as one result: the
   * work they took is what the stop pushed.
   * @returns {Promise<PushResult>}
   */
  const finalPush = async () => {
    if (!pushing) return queued(async () => /** @type {PushResult} */ (nothingPushed()))
    const before = [...unfinished]
    const pushes = [await pushNow()]
    const earlier = await Promise.allSettled(before)
    const copies = await settleConflicts(pushes)
    const merged = mergePushes([...earlier.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])), ...pushes])
    if (copies.length > 0) merged.conflictCopies = [...(merged.conflictCopies ?? []), ...copies]
    return merged
  }
  /**
   * A stop's push that found files changed on S3 (another agent stopping
   * at the same moment) left this side's version only on a disk about to
   * go: those paths are pulled, both versions kept (this one as a conflict
   * copy), and pushed again, as a watch does between pushes. Appends the
   * pushes it makes; returns the copies its pulls made.
   * @param {PushResult[]} pushes
   */
  const settleConflicts = async (pushes) => {
    /** @type {{ path: string, copy: string }[]} */
    const copies = []
    for (let round = 0; round < STOP_CONFLICT_ROUNDS; round++) {
      const paths = [...new Set((pushes[pushes.length - 1].errorDetails ?? []).flatMap((d) => (d.code === 'CONFLICT' ? [d.path] : [])))]
      if (paths.length === 0) break
      try {
        // Not the watch's signal: aborting it is what stops the watch.
        const pulled = await queued(() => sync.pullRemoteChanges({ paths, signal: new AbortController().signal }))
        if (pulled) {
          copies.push(...pulled.copies)
          announce(sync, pulled)
        }
      } catch (e) {
        sync.info(`watch: stop: pulling ${paths.length} path(s) changed on S3 failed (${/** @type {Error} */ (e)?.message ?? e}); this side's version is only here`)
        break
      }
      pushes.push(await pushNow())
    }
    return copies
  }
  // The journal first: a push made while the first pull runs is pulled
  // next, not missed. A follower that only pulls never writes it (nor
  // anything else). Where it cannot be read, full pulls only, and the
  // journal is tried again now and then.
  let told = false
  /** @returns {Promise<boolean>} */
  const follow = () =>
    sync.follow(pushing).then(
      () => true,
      (e) => {
        // Said once; the retries are quiet.
        if (!told) sync.info(`watch: the change journal cannot be read (${/** @type {Error} */ (e)?.message ?? e}); other writers' changes come with the full checks until it can`)
        told = true
        return false
      },
    )
  const journal = pulling && !signal?.aborted && (await follow())
  let files = 0
  try {
    const first = await sync.pull({ signal })
    files = first.downloadedFiles ?? 0
  } catch (e) {
    if (!signal?.aborted) throw e
  }
  // Stopped during that first pull (a container stopped while starting):
  // what the agent wrote meanwhile is still pushed, as at any stop. The
  // push deletes nothing the interrupted pull did not record.
  if (signal?.aborted) {
    state.stopped = true
    const final = finalPush()
    return {
      stop: () => final,
      notify() {},
      get pushes() {
        return state.pushes
      },
    }
  }
  /** When the first change the next push takes was seen. @type {number | undefined} */
  let pendingSince
  const schedule = () => {
    if (state.stopped || !pushing) return
    clearTimeout(state.timer)
    pendingSince ??= Date.now()
    const wait = Math.min(debounceMs, pendingSince + debounceMs * MAX_WAIT_DEBOUNCES - Date.now())
    state.timer = setTimeout(
      () => {
        pendingSince = undefined
        void pushNow()
      },
      Math.max(0, wait),
    )
  }
  const stateDir = sync.stateDir
  const watcher = pushing
    ? watchTree(sync.workspaceDir, (name) => {
        // The engine's own state is not the agent's work.
        if (!stateDir && (name === '.s3ws' || name.startsWith('.s3ws/') || name.startsWith('.s3ws\\'))) return
        schedule()
      })
    : { close() {} }
  const rescan = setInterval(schedule, Math.max(RESCAN_MS, debounceMs * 10))
  rescan.unref()
  remote = pulling ? followRemote(sync, { pollMs, fullCheckMs, scaled, journal, follow, files, queued, isStopped: () => state.stopped, caughtUp: schedule }) : undefined
  // What was already waiting when watching began goes now, not at the
  // first change or rescan.
  if (pushing) void pushNow()
  /** @type {Promise<PushResult> | undefined} */
  let stopping
  const stop = () => {
    stopping ??= (async () => {
      state.stopped = true
      clearTimeout(state.timer)
      clearInterval(rescan)
      remote?.stop()
      watcher.close()
      signal?.removeEventListener('abort', onAbort)
      return finalPush()
    })()
    return stopping
  }
  const onAbort = () => void stop()
  signal?.addEventListener('abort', onAbort, { once: true })
  return {
    stop,
    notify: () => remote?.now(),
    get pushes() {
      return state.pushes
    },
  }
}

/**
 * Emits `remote-change` for what a pull of other instances' changes did,
 * when it did something.
 * @param {Watched} sync
 * @param {RemotePull} pulled
 */
function announce(sync, { written, removed, conflicts }) {
  if (written.length + removed.length + conflicts.length > 0) sync.remoteChanged({ paths: written, deleted: removed, conflicts })
}

/**
 * The remote half of a watch: checks the change journal every `pollMs`
 * (a full pull instead when it is time; without the journal, full pulls
 * only, and the journal tried again every `FOLLOW_RETRY_MS`), and pulls the
 * paths a push found changed on S3; queued with the pushes. Backs off
 * while the server does not answer, says so once, and catches up (a push
 * of what waited) when it answers again. `stop()` cancels a running check.
 * @param {Watched} sync
 * @param {{ pollMs: number, fullCheckMs: number, scaled: boolean, journal: boolean, follow: () => Promise<boolean>, files: number, queued: <T>(op: () => Promise<T>) => Promise<T>, isStopped: () => boolean, caughtUp: () => void }} how
 */
function followRemote(sync, { pollMs, fullCheckMs, scaled, journal, follow, files, queued, isStopped, caughtUp }) {
  let lastFull = Date.now()
  let lastFollow = Date.now()
  let failures = 0
  let timer = /** @type {NodeJS.Timeout | undefined} */ (undefined)
  let checking = false
  let again = false
  /** Paths a push found changed on S3: pulled at the next check. */
  const conflicted = new Set(/** @type {string[]} */ ([]))
  /** The running check's cancellation, for stop(). */
  let running = /** @type {AbortController | undefined} */ (undefined)
  const fullEvery = () => (scaled ? Math.max(fullCheckMs, Math.ceil(files / 1000) * FULL_CHECK_MS_PER_PAGE) : fullCheckMs)
  /** @param {number} ms */
  const later = (ms) => {
    clearTimeout(timer)
    if (!isStopped()) timer = setTimeout(check, ms)
  }
  const check = async () => {
    if (isStopped()) return
    if (checking) {
      again = true
      return
    }
    checking = true
    const paths = [...conflicted]
    conflicted.clear()
    try {
      if (!journal && Date.now() - lastFollow >= FOLLOW_RETRY_MS) {
        lastFollow = Date.now()
        // Following again: what was missed meanwhile comes with a full pull.
        if ((journal = await follow())) lastFull = 0
      }
      const whole = Date.now() - lastFull >= fullEvery()
      const what = whole ? { whole: true } : paths.length > 0 ? { paths } : journal ? {} : null
      if (what) {
        const controller = (running = new AbortController())
        const pulled = await queued(() => (isStopped() ? Promise.resolve(null) : sync.pullRemoteChanges({ ...what, signal: controller.signal })))
        if (whole) lastFull = Date.now()
        // The journal's news is still to check after a pull of paths.
        if (!whole && paths.length > 0 && journal) again = true
        if (failures > 0) {
          sync.info(`watch: the server answers again after ${failures} failed check(s); catching up`)
          failures = 0
          caughtUp()
        }
        if (pulled) {
          if (whole) files = pulled.files
          announce(sync, pulled)
        }
      }
    } catch (e) {
      if (isStopped()) return
      for (const p of paths) conflicted.add(p)
      failures++
      sync.remoteFailed(/** @type {Error} */ (e), failures === 1)
    } finally {
      checking = false
      running = undefined
    }
    const idle = journal ? pollMs : Math.min(FOLLOW_RETRY_MS, fullEvery())
    if (again) {
      again = false
      later(0)
    } else later(failures > 0 ? Math.min(pollMs * 2 ** failures, MAX_BACKOFF_MS) : idle)
  }
  later(journal ? pollMs : Math.min(FOLLOW_RETRY_MS, fullEvery()))
  return {
    stop() {
      clearTimeout(timer)
      running?.abort()
    },
    now: () => later(0),
    /** @param {string[]} list */
    conflicted(list) {
      for (const p of list) conflicted.add(p)
      later(0)
    },
  }
}

/**
 * Calls `onChange(relativeName)` for changes anywhere under `dir`: one
 * recursive watcher (FSEvents on macOS, Windows), or on Linux one inotify
 * watcher a directory, new ones added as they appear. Not Node's recursive
 * watcher there: it watches each file, and a file replaced by a rename (as
 * every pull writes one) is never heard of again, so an agent's edit to a
 * file another instance had just changed waited for the rescan (30 s).
 * @param {string} dir
 * @param {(name: string) => void} onChange
 * @returns {{ close(): void }}
 */
function watchTree(dir, onChange) {
  if (process.platform === 'linux') return watchEachDirectory(dir, onChange)
  try {
    const watcher = watch(dir, { recursive: true, persistent: true }, (_event, name) => onChange(String(name ?? '')))
    watcher.on('error', () => onChange(''))
    return watcher
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM') throw e
    return watchEachDirectory(dir, onChange)
  }
}

/**
 * `watchTree` without recursive notifications: one watcher a directory
 * (the engine's own `.s3ws` left out).
 * @param {string} root
 * @param {(name: string) => void} onChange
 */
function watchEachDirectory(root, onChange) {
  /** @type {Map<string, import('node:fs').FSWatcher>} */
  const watchers = new Map()
  /**
   * Watches the directory `rel` and those under it. `renew`: its parent
   * saw it made, moved or deleted, so a watcher it had may be on a
   * directory gone (one deleted and made again under the same name is
   * another directory, whatever its inode number): watched anew.
   * @param {string} rel
   * @param {boolean} [renew]
   */
  const add = (rel, renew = false) => {
    const known = watchers.get(rel)
    if ((known && !renew) || rel.split('/').includes('.s3ws')) return
    const full = path.join(root, rel)
    /** @type {import('node:fs').Dirent[]} */
    let entries
    try {
      entries = readdirSync(full, { withFileTypes: true })
    } catch {
      // Not a directory, or gone.
      known?.close()
      watchers.delete(rel)
      return
    }
    known?.close()
    try {
      const watcher = watch(full, { persistent: true }, (_event, name) => {
        const changed = rel ? `${rel}/${name ?? ''}` : String(name ?? '')
        onChange(changed)
        // A directory made, moved in or replaced since: watched from now on.
        if (name) add(changed, true)
      })
      watcher.on('error', () => {
        watcher.close()
        if (watchers.get(rel) === watcher) watchers.delete(rel)
        onChange(rel)
      })
      watchers.set(rel, watcher)
    } catch {
      watchers.delete(rel)
      return
    }
    for (const e of entries) if (e.isDirectory()) add(rel ? `${rel}/${e.name}` : e.name)
  }
  add('')
  return {
    close() {
      for (const w of watchers.values()) w.close()
      watchers.clear()
    },
  }
}

module.exports = { watchWorkspace }
