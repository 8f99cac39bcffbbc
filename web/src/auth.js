// Signing in on a hub with tokens (ADR-040): the token is exchanged once for an HttpOnly session
// cookie (POST /auth/session); the page never keeps the token. GET /auth/session says who we are
// and gives the CSRF token that every cookie-authenticated write must send in X-StateHub-CSRF.
import { escapeHtml as h } from './hub.js'

let current = null

export function me () {
  return current
}

// The session, {tokens: false} on an open hub, or null when this browser is not signed in.
export async function loadSession () {
  const answer = await fetch('/auth/session', { headers: { accept: 'application/json' } })
  if (answer.status === 401) { current = null; return null }
  if (!answer.ok) throw new Error(`/auth/session: ${answer.status}`)
  current = await answer.json()
  return current
}

export async function signIn (token) {
  const answer = await fetch('/auth/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ token })
  })
  const body = await answer.json().catch(() => ({}))
  if (!answer.ok) throw new Error(body.error || `sign-in failed (${answer.status})`)
  current = body
  return body
}

export async function signOut () {
  await fetch('/auth/session', { method: 'DELETE', headers: csrfHeaders() })
  current = null
}

// Whether this session's token allows `right` (write | edit | admin) on `repo`: what the page offers
// to do follows it, so a read token sees no action buttons. Always true on an open hub. The hub
// decides every request again; this only keeps the page from offering what it would refuse.
export function mayAct (repo, right = 'write') {
  if (!current || !current.tokens) return true
  return current.rights.includes(right) && (current.repos == null || current.repos.includes(repo))
}

// The sentence shown instead of what `mayAct` forbids.
export function notAllowed (repo, right = 'write') {
  const has = current && current.rights.length ? current.rights.join(', ') : 'nothing'
  const where = current && current.repos ? ` on ${current.repos.join(', ')}` : ''
  return `Your token (${current ? current.actor : '?'}: ${has}${where}) does not allow ${right} on ${repo}; ask the hub's admin for one that does.`
}

// Headers a state-changing fetch adds: the session's CSRF token, when signed in with a cookie.
export function csrfHeaders () {
  return current && current.csrf_token ? { 'x-statehub-csrf': current.csrf_token } : {}
}

export function renderSignIn (root, then) {
  root.innerHTML = `<section class="sign-in"><h2>Sign in</h2>
    <p class="muted">This hub requires a token. Paste the token the hub's admin minted for you
    (<code>statehub token mint --actor YOU --right read</code>). It is exchanged for a session
    of this browser that ends with the token, and is not kept by the page.</p>
    <form id="sign-in-form">
      <input id="sign-in-token" type="password" autocomplete="off" spellcheck="false" placeholder="token" required>
      <button class="primary" id="sign-in-button">Sign in</button>
    </form>
    <p id="sign-in-error" class="bad" role="alert"></p></section>`
  root.querySelector('#sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault()
    const field = root.querySelector('#sign-in-token')
    try {
      await signIn(field.value.trim())
      field.value = ''
      then()
    } catch (error) {
      root.querySelector('#sign-in-error').textContent = error.message
    }
  })
}

// The header's "who you are": actor, right, what the token allows, its repos and expiry.
export function renderWho (place, onSignOut) {
  if (!current || !current.tokens) { place.innerHTML = ''; return }
  // A repo scope limits changes only: a scoped token still reads every repo (ADR-016), so say which is which.
  const changes = current.rights.filter((r) => r !== 'read')
  const rights = current.repos && changes.length
    ? `read: all repos · ${changes.join(', ')}: ${current.repos.join(', ')}`
    : `${current.rights.join(', ')} · all repos`
  const until = current.expires ? ` · token until ${current.expires}` : ''
  place.innerHTML = `<span id="who-actor" class="who-actor">${h(current.actor)}</span>
    <span id="who-rights" class="muted-light" title="what this token may do">${h(rights)}${h(until)}</span>
    <button id="sign-out" type="button">Sign out</button>`
  place.querySelector('#sign-out').addEventListener('click', async () => {
    await signOut()
    onSignOut()
  })
}
