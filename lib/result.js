// @ts-check
'use strict'

// Result shaping: the engine's reports and errors as upstream's result
// objects (`PullResult`, `PushResult`, `errorDetails` entries).

/** @typedef {import('../index').SyncErrorDetail} SyncErrorDetail */
/** @typedef {import('../binding').NativeReport} NativeReport */
/** @typedef {import('../binding').NativeError} NativeError */
/** @typedef {import('./errors.js').SyncError} SyncError */

/**
 * @param {NativeError} e
 */
function errorDetail(e) {
  /** @type {SyncErrorDetail} */
  const detail = { path: e.path, code: e.code, message: e.message }
  if (e.key) detail.key = e.key
  if (e.s3Code) Object.assign(detail, { s3Code: e.s3Code, statusCode: e.statusCode ?? undefined, retryable: e.retryable ?? false })
  return detail
}

/**
 * A thrown error as a result's `errorDetails` entry (S3 fields only when set).
 * @param {SyncError | undefined} err
 * @param {unknown} thrown
 */
function detailOf(err, thrown) {
  /** @type {SyncErrorDetail} */
  const detail = { path: '', code: /** @type {SyncErrorDetail['code']} */ (err?.code ?? 'S3_OPERATION_ERROR'), message: err?.message ?? String(thrown) }
  if (err?.s3Code !== undefined) Object.assign(detail, { s3Code: err.s3Code, statusCode: err.statusCode, retryable: err.retryable })
  return detail
}

/**
 * The result of an operation that failed as a whole (upstream's shape for a
 * push: it resolves rather than rejects).
 * @param {'pull' | 'push'} kind
 * @param {string} message
 * @param {SyncErrorDetail} detail
 * @param {number} duration
 */
function failedResult(kind, message, detail, duration) {
  return {
    success: false,
    ...(kind === 'pull' ? { downloadedFiles: 0 } : { uploadedFiles: 0 }),
    deletedFiles: 0,
    errors: [message],
    errorDetails: [detail],
    duration,
    transferredFiles: 0,
    unchangedFiles: 0,
    bytesTransferred: 0,
  }
}

/**
 * @param {NativeReport} report
 * @param {'pull' | 'push'} kind
 */
function toResult(report, kind) {
  /** @type {any} */
  const result = {
    // A push dry run with conflicts predicts a push that fails.
    success: report.errors.length === 0 && !(kind === 'push' && report.plan?.conflicts.length),
    // Upstream's meaning: a pull "downloaded" every file it made current
    // (its pulls downloaded everything), so files already identical count.
    ...(kind === 'pull' ? { downloadedFiles: report.transferred + report.unchanged } : { uploadedFiles: report.transferred }),
    deletedFiles: report.deleted,
    duration: Math.round(report.durationMs),
    transferredFiles: report.transferred,
    unchangedFiles: report.unchanged,
    bytesTransferred: report.bytes,
  }
  if (report.errors.length > 0) {
    result.errors = report.errors.map((e) => e.message)
    result.errorDetails = report.errors.map(errorDetail)
  }
  if (report.conflicts.length > 0) result.conflicts = report.conflicts
  if (report.conflictCopies.length > 0) result.conflictCopies = report.conflictCopies.map(({ path, copy }) => ({ path, copy }))
  if (report.warnings.length > 0) result.warnings = report.warnings.map(({ path, code, message }) => ({ path, code, message }))
  if (report.skipped.length > 0) result.skipped = report.skipped.map(({ path, code, reason }) => ({ path, code, reason }))
  if (report.checkpoint) result.checkpoint = report.checkpoint
  if (report.plan) {
    const { download, deleteLocal, upload, deleteRemote, conflicts } = report.plan
    result.plan = { download, deleteLocal, upload, deleteRemote, conflicts }
    // A dry run counts what the real call would do.
    const moving = kind === 'pull' ? download.length : upload.length
    result.transferredFiles = moving
    result.deletedFiles = kind === 'pull' ? deleteLocal.length : deleteRemote.length
    if (kind === 'pull') result.downloadedFiles = moving + report.unchanged
    else result.uploadedFiles = moving
  }
  return result
}

/**
 * A restore's result (see `restore()` in index.d.ts).
 * @param {NativeReport} report
 */
function toRestoreResult(report) {
  /** @type {any} */
  const result = {
    success: report.errors.length === 0,
    restoredFiles: report.plan ? report.plan.upload.length : report.transferred,
    deletedFiles: report.plan ? report.plan.deleteRemote.length : report.deleted,
    unchangedFiles: report.unchanged,
    duration: Math.round(report.durationMs),
  }
  if (report.conflicts.length > 0) result.conflicts = [...new Set(report.conflicts)].sort()
  if (report.conflictCopies.length > 0) result.conflictCopies = report.conflictCopies.map(({ path, copy }) => ({ path, copy }))
  if (report.errors.length > 0) {
    result.errors = report.errors.map((e) => e.message)
    result.errorDetails = report.errors.map(errorDetail)
  }
  if (report.warnings.length > 0) result.warnings = report.warnings.map(({ path, code, message }) => ({ path, code, message }))
  if (report.checkpoint) result.checkpoint = report.checkpoint
  if (report.plan) result.plan = { restore: report.plan.upload, delete: report.plan.deleteRemote, conflicts: report.plan.conflicts }
  return result
}

/** The result of a push that had nothing to do (a pull-only watch's stop()). */
function nothingPushed() {
  return toResult({ transferred: 0, bytes: 0, deleted: 0, unchanged: 0, conflicts: [], conflictCopies: [], warnings: [], skipped: [], errors: [], durationMs: 0 }, 'push')
}

/**
 * Pushes that ran one after another (a `watch().stop()`'s: those running or
 * queued when it was called, then its final push) as one result: what they
 * moved and how long they took, summed; the conflicts, conflict copies and
 * warnings any of them reported, each once; the files none of them moved
 * (the last one's unchanged count, less what the others sent before it);
 * and whether anything is left unpushed, which only the last one says (it
 * tried again all the others failed): its success, errors and skipped
 * paths. The last checkpoint.
 * @param {import('../index').PushResult[]} results
 * @returns {import('../index').PushResult}
 */
function mergePushes(results) {
  if (results.length === 1) return results[0]
  const last = results[results.length - 1]
  /** @param {'uploadedFiles' | 'deletedFiles' | 'transferredFiles' | 'bytesTransferred' | 'duration'} k @param {typeof results} of */
  const sum = (k, of = results) => of.reduce((n, r) => n + (r[k] ?? 0), 0)
  /** @type {any} */
  const merged = {
    ...last,
    uploadedFiles: sum('uploadedFiles'),
    deletedFiles: sum('deletedFiles'),
    duration: sum('duration'),
    transferredFiles: sum('transferredFiles'),
    unchangedFiles: Math.max(0, (last.unchangedFiles ?? 0) - sum('transferredFiles', results.slice(0, -1))),
    bytesTransferred: sum('bytesTransferred'),
  }
  for (const k of /** @type {const} */ (['conflicts', 'conflictCopies', 'warnings'])) {
    const seen = new Map(results.flatMap((r) => (r[k] ?? []).map((v) => [JSON.stringify(v), v])))
    if (seen.size > 0) merged[k] = [...seen.values()]
  }
  const checkpoint = results.findLast((r) => r.checkpoint)?.checkpoint
  if (checkpoint) merged.checkpoint = checkpoint
  return merged
}

module.exports = { errorDetail, detailOf, failedResult, toResult, toRestoreResult, nothingPushed, mergePushes }
