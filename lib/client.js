// @ts-check
'use strict'

// How an `s3Client` option is used. A stock AWS SDK v3 S3Client lends the
// native engine its region, endpoint, path style and credential provider;
// anything the native client would bypass (middleware, a request handler or
// agent, retry settings, endpoint variants) sends every request through the
// client's own `send()` instead, as does any non-SDK object or stubbed send.

/** @typedef {{ send(command: any): Promise<any>, config?: any, middlewareStack?: any, constructor: any, destroy?: () => void }} Client */

/** @param {any} fn */
function isStub(fn) {
  return Boolean(fn && (fn.isSinonProxy || fn.mock || fn._isMockFunction))
}

/** @param {Client} client */
function looksLikeSdkClient(client) {
  const config = client.config
  return Boolean(config && typeof config.credentials === 'function' && typeof config.region === 'function')
}

/** @param {any} value */
async function resolved(value) {
  return typeof value === 'function' ? value() : value
}

/** A request handler's settings, comparable with another's. @param {any} handler */
async function handlerSettings(handler) {
  const config = (await handler?.configProvider) ?? handler?.config ?? {}
  /** @type {Record<string, unknown>} */
  const out = {}
  for (let [key, value] of Object.entries(config)) {
    // The plain-HTTP agent hides behind a lazy provider.
    if (key === 'httpAgentProvider' && typeof value === 'function') value = await value()
    if (typeof value === 'function') continue
    out[key] = value && typeof value === 'object' ? `${value.constructor?.name}:${JSON.stringify(value.options ?? null)}` : value
  }
  return JSON.stringify(out, Object.keys(out).sort())
}

const ENDPOINT_VARIANTS = ['useAccelerateEndpoint', 'useDualstackEndpoint', 'useFipsEndpoint', 'useArnRegion', 'disableMultiregionAccessPoints']

/**
 * What in `client` differs from a stock client of its own class, in ways
 * the native engine would not honour. Empty for a stock client.
 * @param {Client} client
 * @returns {Promise<string[]>}
 */
async function customisations(client) {
  let stock
  try {
    stock = new client.constructor({ region: 'us-east-1' })
  } catch {
    return ['a client class that cannot be compared with a stock one']
  }
  try {
    /** @type {string[]} */
    const found = []
    const ids = (/** @type {any} */ c) => /** @type {string[]} */ (c.middlewareStack?.identify?.() ?? [])
    const [mine, theirs] = [ids(client), ids(stock)]
    const added = mine.filter((m) => !theirs.includes(m))
    const removed = theirs.filter((m) => !mine.includes(m))
    if (added.length > 0) found.push(`middleware ${added.map((m) => m.split(' - ')[0]).join(', ')}`)
    if (removed.length > 0) found.push(`middleware removed (${removed.map((m) => m.split(' - ')[0]).join(', ')})`)
    const [handler, stockHandler] = [client.config.requestHandler, stock.config.requestHandler]
    if (handler?.constructor !== stockHandler?.constructor) found.push(`request handler ${handler?.constructor?.name ?? typeof handler}`)
    else if (handler?.externalAgent) found.push('an HTTP agent')
    else if ((await handlerSettings(handler)) !== (await handlerSettings(stockHandler))) found.push('request handler settings')
    const [attempts, stockAttempts] = await Promise.all([resolved(client.config.maxAttempts), resolved(stock.config.maxAttempts)])
    const [mode, stockMode] = await Promise.all([resolved(client.config.retryMode), resolved(stock.config.retryMode)])
    if (attempts !== stockAttempts || mode !== stockMode || typeof client.config.retryStrategy !== typeof stock.config.retryStrategy) {
      found.push('retry settings')
    }
    for (const name of ENDPOINT_VARIANTS) {
      const [value, stockValue] = await Promise.all([resolved(client.config[name]), resolved(stock.config[name])])
      if (value !== stockValue) found.push(name)
    }
    return found
  } finally {
    stock.destroy?.()
  }
}

/**
 * 'sdk' (native engine with the client's settings) or 'send' (every request
 * through `client.send`), with why, for the log.
 * @param {Client} client
 * @param {'auto' | 'sdk' | 'send'} forced
 * @returns {Promise<{ mode: 'sdk' | 'send', why?: string }>}
 */
async function clientMode(client, forced) {
  if (forced !== 'auto') return { mode: forced }
  if (!looksLikeSdkClient(client)) return { mode: 'send' }
  if (isStub(client.send)) return { mode: 'send', why: 'its send() is stubbed' }
  const found = await customisations(client)
  return found.length > 0 ? { mode: 'send', why: `it has ${found.join(', ')}` } : { mode: 'sdk' }
}

/** @param {any} ep */
function formatEndpoint(ep) {
  if (typeof ep === 'string') return ep
  if (ep instanceof URL) return ep.href.replace(/\/$/, '')
  const port = ep.port ? `:${ep.port}` : ''
  const path = ep.path && ep.path !== '/' ? ep.path : ''
  return `${ep.protocol}//${ep.hostname}${port}${path}`
}

/**
 * Region, endpoint and path style of a real S3Client (README: "s3Client").
 * @param {Client} client
 */
async function sdkClientSettings(client) {
  const config = client.config
  const region = await resolved(config.region)
  let endpoint
  if (typeof config.endpoint === 'function') endpoint = formatEndpoint(await config.endpoint())
  else if (typeof config.serviceConfiguredEndpoint === 'function') {
    const configured = await config.serviceConfiguredEndpoint()
    if (configured) endpoint = formatEndpoint(configured)
  }
  return { region, endpoint, forcePathStyle: typeof config.forcePathStyle === 'boolean' ? config.forcePathStyle : undefined }
}

/** The client's credential provider, for the engine. @param {Client} client */
function sdkCredentials(client) {
  return async () => {
    const c = await client.config.credentials()
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken ?? undefined,
      expiration: c.expiration instanceof Date ? c.expiration.getTime() : undefined,
    }
  }
}

module.exports = { clientMode, sdkClientSettings, sdkCredentials }
