// State Hub web UI: a hash router over the views. Every view has an address (filters included):
//   #/                      dashboard            #/repos/<slug>          a repo
//   #/workplans?...         workplans list       #/workplans/<id>        a workplan
//   #/tasks?...             tasks list           #/tasks/<ref>           a task
//   #/canon?...             canon list           #/canon/<id>?repo=      a canon document
//   #/events?...            the write buffer     #/fleet?repo=           the fleet registry
//   #/search?q=...          search               #/edit/<slug>/<path>    the manifest editor (own chunk)
// refreshView() renders the current view again from the hub: live.js calls it when the hub's change
// stream says something changed, so every view updates without a reload.
// On a hub with tokens the page first signs in (auth.js, ADR-040): everything it then shows and does
// is what the session's token allows, and the session's actor acts and edits.
import { loadSession, me, renderSignIn, renderWho } from './auth.js'
import { escapeHtml as h } from './hub.js'
import { currentRoute, wireRowLinks } from './ui.js'
import { canonView, eventsView, searchView, tasksView, workplansView } from './lists.js'
import { canonPage, dashboardView, fleetView, repoView, taskView, workplanView } from './pages.js'
import { whoBox } from './actions.js'
import { followHub, stopFollowing } from './live.js'

const root = document.getElementById('app')
const who = document.getElementById('who')
let leave = null
let rendering = 0

// Each render draws into a box of its own, put on the page once it is drawn (the editor's at once):
// a render that an address change or a sign-out overtook draws into a box nobody sees.
const ROUTES = [
  [/^\/$/, (box, m, p, ctx) => dashboardView(box, ctx)],
  [/^\/repos\/([^/]+)$/, (box, m, p, ctx) => repoView(box, m[1], ctx)],
  [/^\/workplans$/, (box, m, p) => workplansView(box, p)],
  [/^\/workplans\/([^/]+)$/, (box, m, p, ctx) => workplanView(box, m[1], ctx)],
  [/^\/tasks$/, (box, m, p) => tasksView(box, p)],
  [/^\/tasks\/([^/]+)$/, (box, m, p, ctx) => taskView(box, m[1], ctx)],
  [/^\/canon$/, (box, m, p) => canonView(box, p)],
  [/^\/canon\/([^/]+)$/, (box, m, p) => canonPage(box, m[1], p)],
  [/^\/events$/, (box, m, p) => eventsView(box, p)],
  [/^\/fleet$/, (box, m, p) => fleetView(box, p)],
  [/^\/search$/, (box, m, p) => searchView(box, p)],
  [/^\/edit\/(.+)$/, async (box, m, p) => {
    const { editorView } = await import('./editor.js') // CodeMirror and yjs load only here
    root.replaceChildren(box) // CodeMirror measures itself on the page
    return editorView(box, m[1], p)
  }]
]

function decodePath (part) {
  return part.split('/').map((p) => { try { return decodeURIComponent(p) } catch { return p } }).join('/')
}

/** Render the view the address names; a view may return a function to call when it is left. */
export async function refreshView () {
  const mine = ++rendering
  if (leave) { leave(); leave = null }
  if (me() === null) { signedOut(); return }
  const { path, params } = currentRoute()
  const found = ROUTES.map(([pattern, view]) => [pattern.exec(path), view]).find(([m]) => m)
  if (found) found[0] = found[0].map((part, i) => (i === 0 ? part : decodePath(part)))
  document.body.dataset.view = found ? path.split('/')[1] || 'dashboard' : 'none'
  const box = document.createElement('div')
  box.className = 'view'
  try {
    if (!found) {
      box.innerHTML = `<h1>Not found</h1><p>No view at <code>${h(path)}</code>. <a href="#/">Dashboard</a></p>`
      return
    }
    const result = await found[1](box, found[0], params, { refresh: refreshView })
    if (typeof result === 'function' && path.startsWith('/edit/')) {
      if (mine === rendering) leave = result
      else result() // overtaken: close the editor it opened
    }
  } catch (error) {
    box.innerHTML = `<h1>Could not load</h1><p class="bad" role="alert">${h(error.message)}</p>`
  } finally {
    if (mine === rendering) {
      if (box.parentNode !== root) root.replaceChildren(box)
      const heading = root.querySelector('h1')
      document.title = (heading ? heading.textContent.trim() + ' · ' : '') + 'State Hub'
      document.body.dataset.ready = String(mine)
      performance.mark('statehub:view-ready')
      window.dispatchEvent(new CustomEvent('statehub:view-ready', { detail: { view: document.body.dataset.view } }))
    }
  }
}

function signedOut () {
  rendering++ // a view still drawing must not cover the sign-in form
  stopFollowing()
  document.getElementById('live').textContent = ''
  if (leave) { leave(); leave = null }
  renderWho(who, signedOut)
  renderSignIn(root, start)
}

/** Ask who we are (a session on a hub with tokens), show it in the header, then the view. */
async function start () {
  try {
    await loadSession()
  } catch (error) {
    root.innerHTML = `<h1>Could not reach the hub</h1><p class="bad" role="alert">${h(error.message)}</p>`
    return
  }
  const session = me()
  if (session && session.tokens) renderWho(who, signedOut)
  else if (session) whoBox(who)
  await refreshView()
  followHub(root, refreshView, document.getElementById('live')) // live: the view follows the hub's changes
}

window.statehub = { refresh: refreshView }
wireRowLinks(root)
document.getElementById('search').addEventListener('submit', (event) => {
  event.preventDefault()
  const q = event.target.q.value.trim()
  if (q) location.hash = '/search?q=' + encodeURIComponent(q)
})
window.addEventListener('hashchange', () => { refreshView(); root.focus({ preventScroll: true }) })
window.addEventListener('statehub:signed-out', () => { loadSession().then((s) => { if (s === null) signedOut() }) })
start()
