// State Hub web UI: #/ is the dashboard, #/edit/<repo slug>/<path>?user=NAME the manifest editor.
// On a hub with tokens the page first signs in (auth.js): everything it then shows and does is what
// the session's token allows, and the editor's identity is the token's actor.
import { loadSession, me, renderSignIn, renderWho } from './auth.js'
import { renderDashboard } from './dashboard.js'
import { renderEditor } from './editor.js'
import { escapeHtml as h } from './hub.js'

const root = document.getElementById('app')
const who = document.getElementById('who')
let leave = null

function whoAmI (params) {
  const given = params.get('user')
  if (given) localStorage.setItem('statehub.user', given)
  return given || localStorage.getItem('statehub.user')
}

function askName (then) {
  root.innerHTML = `<section><h2>Who are you?</h2>
    <p class="muted">Your name shows to the others in the room and becomes the author of the commits you save.</p>
    <form id="who"><input id="who-name" placeholder="your name" required> <button class="primary">Continue</button></form></section>`
  root.querySelector('#who').addEventListener('submit', (event) => {
    event.preventDefault()
    const name = root.querySelector('#who-name').value.trim()
    if (name) { localStorage.setItem('statehub.user', name); then(name) }
  })
}

function signedOut () {
  if (leave) { leave(); leave = null }
  renderWho(who, signedOut)
  renderSignIn(root, start)
}

async function route () {
  if (leave) { leave(); leave = null }
  const session = me()
  if (session === null) { signedOut(); return }
  const [path, query] = location.hash.replace(/^#/, '').split('?')
  const params = new URLSearchParams(query || '')
  try {
    if (path.startsWith('/edit/')) {
      const doc = decodeURIComponent(path.slice('/edit/'.length))
      if (session.tokens) {
        leave = renderEditor(root, doc, session.actor, true) // the token's actor edits and saves
        return
      }
      const user = whoAmI(params)
      if (user) leave = renderEditor(root, doc, user)
      else askName((name) => { leave = renderEditor(root, doc, name) })
    } else {
      await renderDashboard(root)
    }
  } catch (error) {
    root.innerHTML = `<section class="bad">Could not load: ${h(error.message)}</section>`
  }
}

async function start () {
  try {
    await loadSession()
  } catch (error) {
    root.innerHTML = `<section class="bad">Could not reach the hub: ${h(error.message)}</section>`
    return
  }
  renderWho(who, signedOut)
  await route()
}

window.addEventListener('hashchange', route)
window.addEventListener('statehub:signed-out', () => { loadSession().then((s) => { if (s === null) signedOut() }) })
start()
