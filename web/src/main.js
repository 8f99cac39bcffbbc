// State Hub web UI: a hash router over the views. Every view has an address (filters included):
//   #/                      dashboard            #/repos/<slug>          a repo
//   #/workplans?...         workplans list       #/workplans/<id>        a workplan
//   #/tasks?...             tasks list           #/tasks/<ref>           a task
//   #/canon?...             canon list           #/canon/<id>?repo=      a canon document
//   #/events?...            the write buffer     #/fleet?repo=           the fleet registry
//   #/search?q=...          search               #/edit/<slug>/<path>    the manifest editor (own chunk)
// refreshView() renders the current view again from the hub: the one call a live-update stream makes.
import { escapeHtml as h } from './hub.js'
import { currentRoute, wireRowLinks } from './ui.js'
import { canonView, eventsView, searchView, tasksView, workplansView } from './lists.js'
import { canonPage, dashboardView, fleetView, repoView, taskView, workplanView } from './pages.js'
import { whoBox } from './actions.js'

const root = document.getElementById('app')
let leave = null
let rendering = 0

const ROUTES = [
  [/^\/$/, (m, p, ctx) => dashboardView(root, ctx)],
  [/^\/repos\/([^/]+)$/, (m, p, ctx) => repoView(root, m[1], ctx)],
  [/^\/workplans$/, (m, p) => workplansView(root, p)],
  [/^\/workplans\/([^/]+)$/, (m, p, ctx) => workplanView(root, m[1], ctx)],
  [/^\/tasks$/, (m, p) => tasksView(root, p)],
  [/^\/tasks\/([^/]+)$/, (m, p, ctx) => taskView(root, m[1], ctx)],
  [/^\/canon$/, (m, p) => canonView(root, p)],
  [/^\/canon\/([^/]+)$/, (m, p) => canonPage(root, m[1], p)],
  [/^\/events$/, (m, p) => eventsView(root, p)],
  [/^\/fleet$/, (m, p) => fleetView(root, p)],
  [/^\/search$/, (m, p) => searchView(root, p)],
  [/^\/edit\/(.+)$/, async (m, p) => {
    const { editorView } = await import('./editor.js') // CodeMirror and yjs load only here
    return editorView(root, m[1], p)
  }]
]

function decodePath (part) {
  return part.split('/').map((p) => { try { return decodeURIComponent(p) } catch { return p } }).join('/')
}

/** Render the view the address names; a view may return a function to call when it is left. */
export async function refreshView () {
  const mine = ++rendering
  if (leave) { leave(); leave = null }
  const { path, params } = currentRoute()
  const found = ROUTES.map(([pattern, view]) => [pattern.exec(path), view]).find(([m]) => m)
  if (found) found[0] = found[0].map((part, i) => (i === 0 ? part : decodePath(part)))
  document.body.dataset.view = found ? path.split('/')[1] || 'dashboard' : 'none'
  try {
    if (!found) {
      root.innerHTML = `<h1>Not found</h1><p>No view at <code>${h(path)}</code>. <a href="#/">Dashboard</a></p>`
      return
    }
    const result = await found[1](found[0], params, { refresh: refreshView })
    if (mine !== rendering) return
    if (typeof result === 'function' && path.startsWith('/edit/')) leave = result
  } catch (error) {
    if (mine !== rendering) return
    root.innerHTML = `<h1>Could not load</h1><p class="bad" role="alert">${h(error.message)}</p>`
  } finally {
    if (mine === rendering) {
      const heading = root.querySelector('h1')
      document.title = (heading ? heading.textContent.trim() + ' · ' : '') + 'State Hub'
      document.body.dataset.ready = String(mine)
      performance.mark('statehub:view-ready')
      window.dispatchEvent(new CustomEvent('statehub:view-ready', { detail: { view: document.body.dataset.view } }))
    }
  }
}

window.statehub = { refresh: refreshView }
wireRowLinks(root)
whoBox(document.getElementById('who'))
document.getElementById('search').addEventListener('submit', (event) => {
  event.preventDefault()
  const q = event.target.q.value.trim()
  if (q) location.hash = '/search?q=' + encodeURIComponent(q)
})
window.addEventListener('hashchange', () => { refreshView(); root.focus({ preventScroll: true }) })
refreshView()
