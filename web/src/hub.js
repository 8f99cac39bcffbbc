// Talking to the hub: every HTTP call of the UI goes through api() (one place for headers, sessions
// and errors), State Hub's own y-websocket message (type 100, a JSON string), and the small pieces
// every view shares: escaping, status badges, the person who acts.
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { csrfHeaders, me } from './auth.js'

export const STATEHUB_MESSAGE = 100

/** The hub refused or failed: `status` is the HTTP status, `message` the hub's sentence, `body` its JSON. */
export class HubError extends Error {
  constructor (status, message, body) {
    super(message)
    this.status = status
    this.body = body
  }
}

/**
 * One request to the hub's JSON API: `api('/tasks?limit=10')`, `api('/events', { method: 'POST', body })`.
 * Resolves to the decoded JSON (or null for an empty answer); rejects with HubError carrying the
 * hub's own sentence (its error body's `error`), or the status when the answer is not JSON.
 * `accept` lists statuses that are answers, not failures (a 422 save answer, a 409 claim refusal).
 * A state-changing request carries the session's CSRF header (auth.js, ADR-040); a 401 means the
 * session ended, and the page is told (`statehub:signed-out`).
 */
export async function api (path, { method = 'GET', body, accept = [] } = {}) {
  const headers = { accept: 'application/json' }
  const init = { method, headers, credentials: 'same-origin' }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  if (method !== 'GET' && method !== 'HEAD') Object.assign(headers, csrfHeaders())
  const answer = await fetch(path, init)
  if (answer.status === 401) window.dispatchEvent(new Event('statehub:signed-out'))
  const text = await answer.text()
  let payload = null
  try { payload = text ? JSON.parse(text) : null } catch { payload = null }
  if (answer.ok || accept.includes(answer.status)) return payload
  const sentence = (payload && (payload.error || payload.message)) || `${answer.status} ${answer.statusText}`
  throw new HubError(answer.status, sentence, payload)
}

export const getJSON = (path) => api(path)

export function items (payload) {
  return Array.isArray(payload) ? payload : ((payload && payload.items) || [])
}

export function encodeHubMessage (payload) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, STATEHUB_MESSAGE)
  encoding.writeVarString(encoder, JSON.stringify(payload))
  return encoding.toUint8Array(encoder)
}

export function readHubMessage (decoder) {
  try {
    return JSON.parse(decoding.readVarString(decoder))
  } catch {
    return {}
  }
}

// Text from repos is untrusted: besides HTML's five, the bidi embedding, override and isolate controls
// (U+202A-U+202E, U+2066-U+2069) are shown as their code points, so a title cannot display
// "gnp.exe" as "exe.png" (the Trojan Source trick); right-to-left scripts need none of them.
export function escapeHtml (value) {
  return String(value ?? '')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]))
    .replace(/[\u202A-\u202E\u2066-\u2069]/g, (c) => `&lt;U+${c.codePointAt(0).toString(16).toUpperCase()}&gt;`)
}
const h = escapeHtml

const COLORS = ['#d2553f', '#2f6fdb', '#1e8449', '#8e44ad', '#c27c0e', '#16a085', '#b03a73', '#5d6d7e']

export function colorFor (name) {
  let hash = 0
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) >>> 0
  return COLORS[hash % COLORS.length]
}

// -- shared vocabulary ---------------------------------------------------------------------------

export const TASK_STATUSES = ['todo', 'in-progress', 'blocked', 'done', 'cancelled']
export const WORKPLAN_STATUSES = ['draft', 'active', 'blocked', 'done', 'cancelled']
const SYMBOL = { todo: '○', 'in-progress': '◐', blocked: '■', done: '●', cancelled: '✕', draft: '✎', active: '◐', pending: '…', applied: '✓', rejected: '✕', ok: '✓', degraded: '!' }

/** A status as a badge: its symbol and its word, coloured by a class; never colour alone. */
export function statusBadge (status) {
  const s = String(status ?? '')
  return `<span class="status s-${h(s.replace(/[^a-z-]/g, ''))}">${h(SYMBOL[s] || '')} ${h(s)}</span>`
}

/** A link to a view (hash route); parts are encoded. */
export function href (...parts) {
  return '#/' + parts.map((p) => encodeURIComponent(p)).join('/')
}

// -- who acts ------------------------------------------------------------------------------------

const ACTOR = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/

/** Who acts: the session's actor on a hub with tokens, else the name given in the "you are" box. */
export function currentActor () {
  const session = me()
  if (session && session.tokens) return session.actor
  return localStorage.getItem('statehub.user') || ''
}

export function setActor (name) {
  if (!ACTOR.test(name)) return false
  localStorage.setItem('statehub.user', name)
  return true
}

export function isActor (name) {
  return ACTOR.test(name)
}

/** An idempotency key for an event sent from this page (letters, digits, . _ : -). */
export function newEventKey () {
  const random = crypto.getRandomValues(new Uint32Array(2))
  return `web-${Date.now().toString(36)}-${random[0].toString(36)}${random[1].toString(36)}`
}
