// @ts-check
'use strict'

/** @typedef {import('../index').SyncLogger} SyncLogger */
/** @typedef {'debug' | 'info' | 'warn' | 'error' | 'silent'} LogLevel */

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent']

/** @param {unknown} arg */
function formatArg(arg) {
  if (arg instanceof Error) {
    const code = /** @type {{ code?: unknown }} */ (arg).code
    return code ? `${arg.name} [${code}]: ${arg.message}` : `${arg.name}: ${arg.message}`
  }
  return typeof arg === 'object' && arg !== null ? JSON.stringify(arg) : arg
}

/**
 * Console logger: `[S3_WORKSPACE_SYNC] <ISO time> message ...args` (objects
 * as JSON, errors as `name [code]: message`), as upstream, printing records
 * at `level` and above (default `'info'`; upstream printed everything, which
 * `'debug'` restores).
 * @param {LogLevel} [level]
 * @returns {SyncLogger}
 */
function createDefaultLogger(level = 'info') {
  const min = LOG_LEVELS.indexOf(level)
  if (min < 0) throw new TypeError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`)
  /** @param {number} rank @param {(...a: unknown[]) => void} write */
  const to = (rank, write) =>
    rank < min
      ? () => {}
      : /** @param {string} message @param {unknown[]} args */ (message, ...args) => write('[S3_WORKSPACE_SYNC]', new Date().toISOString(), message, ...args.map(formatArg))
  return {
    debug: to(0, (...a) => console.debug(...a)),
    info: to(1, (...a) => console.log(...a)),
    warn: to(2, (...a) => console.warn(...a)),
    error: to(3, (...a) => console.error(...a)),
  }
}

module.exports = { createDefaultLogger, LOG_LEVELS }
