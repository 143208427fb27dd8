// @ts-check
'use strict'

// `watch()`: pull, then keep the workspace pushed as it changes (file-system
// notifications, with a periodic rescan as a safety net).

const { readdirSync, watch } = require('node:fs')
const path = require('node:path')
const { checkWatchOptions } = require('./options.js')

/** @typedef {import('../index').PullResult} PullResult */
/** @typedef {import('../index').PushResult} PushResult */
/** @typedef {import('../index').OperationOptions} OperationOptions */
/** @typedef {import('../index').WatchOptions} WatchOptions */
/** @typedef {import('../index').Watcher} Watcher */

/**
 * What `watch()` needs of the instance it watches for.
 * @typedef {object} Watched
 * @property {(options?: OperationOptions) => Promise<PullResult>} pull
 * @property {() => Promise<PushResult>} push
 * @property {(e: unknown, who: string) => void} callbackThrew reports a throwing user callback (once per instance)
 * @property {string} workspaceDir
 * @property {string | undefined} stateDir the `stateDir` option: when unset, the engine's `.s3ws` sits in the workspace
 */

/** A periodic rescan under `watch()`, for changes notifications missed. */
const RESCAN_MS = 30_000

/**
 * Pulls, then keeps the workspace pushed: a push `debounceMs` after the
 * last change (file-system notifications, with a rescan every
 * `RESCAN_MS` as a safety net), never two at once. `stop()` (or aborting
 * `signal`) stops watching and resolves after a final push.
 * @param {Watched} sync
 * @param {WatchOptions} [options]
 * @returns {Promise<Watcher>}
 */
async function watchWorkspace(sync, options) {
  const { debounceMs, onPush } = checkWatchOptions(options)
  const signal = options?.signal
  const state = { timer: /** @type {NodeJS.Timeout | undefined} */ (undefined), stopped: false, chain: /** @type {Promise<unknown>} */ (Promise.resolve()), pushes: 0 }
  /** @returns {Promise<PushResult>} */
  const pushNow = () => {
    const next = state.chain.then(async () => {
      state.pushes++
      const result = await sync.push()
      try {
        onPush?.(result)
      } catch (e) {
        sync.callbackThrew(e, 'An onPush callback')
      }
      return result
    })
    state.chain = next.catch(() => {})
    return next
  }
  try {
    await sync.pull({ signal })
  } catch (e) {
    if (!signal?.aborted) throw e
  }
  // Stopped during that first pull (a container stopped while starting):
  // what the agent wrote meanwhile is still pushed, as at any stop. The
  // push deletes nothing the interrupted pull did not record.
  if (signal?.aborted) {
    state.stopped = true
    const final = pushNow()
    return {
      stop: () => final,
      get pushes() {
        return state.pushes
      },
    }
  }
  const schedule = () => {
    if (state.stopped) return
    clearTimeout(state.timer)
    state.timer = setTimeout(() => void pushNow(), debounceMs)
  }
  const stateDir = sync.stateDir
  const watcher = watchTree(sync.workspaceDir, (name) => {
    // The engine's own state is not the agent's work.
    if (!stateDir && (name === '.s3ws' || name.startsWith('.s3ws/') || name.startsWith('.s3ws\\'))) return
    schedule()
  })
  const rescan = setInterval(schedule, Math.max(RESCAN_MS, debounceMs * 10))
  rescan.unref()
  // What was already waiting when watching began goes now, not at the
  // first change or rescan.
  void pushNow()
  /** @type {Promise<PushResult> | undefined} */
  let stopping
  const stop = () => {
    stopping ??= (async () => {
      state.stopped = true
      clearTimeout(state.timer)
      clearInterval(rescan)
      watcher.close()
      signal?.removeEventListener('abort', onAbort)
      return pushNow()
    })()
    return stopping
  }
  const onAbort = () => void stop()
  signal?.addEventListener('abort', onAbort, { once: true })
  return {
    stop,
    get pushes() {
      return state.pushes
    },
  }
}

/**
 * Calls `onChange(relativeName)` for changes anywhere under `dir`
 * (recursive notifications: inotify on Linux, FSEvents on macOS). Where
 * Node cannot watch a tree recursively (Linux before Node 20), each
 * directory is watched on its own, and new ones as they appear.
 * @param {string} dir
 * @param {(name: string) => void} onChange
 * @returns {{ close(): void }}
 */
function watchTree(dir, onChange) {
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
  /** @param {string} rel */
  const add = (rel) => {
    if (watchers.has(rel) || rel.split('/').includes('.s3ws')) return
    const full = path.join(root, rel)
    /** @type {import('node:fs').Dirent[]} */
    let entries
    try {
      entries = readdirSync(full, { withFileTypes: true })
      const watcher = watch(full, { persistent: true }, (_event, name) => {
        const changed = rel ? `${rel}/${name ?? ''}` : String(name ?? '')
        onChange(changed)
        // A directory made (or moved in) since: watched from now on.
        if (name) add(changed)
      })
      watcher.on('error', () => {
        watcher.close()
        watchers.delete(rel)
        onChange(rel)
      })
      watchers.set(rel, watcher)
    } catch {
      return // not a directory (or gone): nothing to watch
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
