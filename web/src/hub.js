// Talking to the hub: the JSON API and State Hub's own y-websocket message (type 100, a JSON string).
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

export const STATEHUB_MESSAGE = 100

export async function getJSON (path) {
  const answer = await fetch(path, { headers: { accept: 'application/json' } })
  if (answer.status === 401) window.dispatchEvent(new Event('statehub:signed-out')) // session ended
  if (!answer.ok) throw new Error(`${path}: ${answer.status}`)
  return answer.json()
}

export function items (payload) {
  return Array.isArray(payload) ? payload : (payload.items || [])
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

export function escapeHtml (value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]))
}

const COLORS = ['#d2553f', '#2f6fdb', '#1e8449', '#8e44ad', '#c27c0e', '#16a085', '#b03a73', '#5d6d7e']

export function colorFor (name) {
  let hash = 0
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) >>> 0
  return COLORS[hash % COLORS.length]
}
